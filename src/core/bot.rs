//! A configured bot at run time: its texts, its answerer and its optional rules in front.

use std::sync::Arc;

use crate::config::{BotSettings, HistoryMode};
use crate::llm::{Llm, Rules};

pub struct Bot {
    pub name: String,
    pub llm: Arc<Llm>,
    /// Rules consulted before the LLM; a hit costs no LLM call.
    pub rules: Option<Arc<Llm>>,
    pub settings: BotSettings,
    /// `settings.farewell_phrases`, normalized once for matching.
    pub farewells: Vec<String>,
}

impl Bot {
    pub fn front_rules(&self) -> Option<&Rules> {
        match self.rules.as_deref() {
            Some(Llm::Rules(rules)) => Some(rules),
            _ => None,
        }
    }

    pub fn uses_bailian_session(&self) -> bool {
        self.settings.history == HistoryMode::BailianSession && matches!(*self.llm, Llm::Bailian(_))
    }
}
