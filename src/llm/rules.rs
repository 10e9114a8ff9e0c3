//! Keyword and regex rules with fixed answers: free, instant, and the embedded default.

use regex::Regex;

use crate::config::RulesSettings;

enum Matcher {
    /// Lower-cased; a message matches when it contains any of them.
    Keywords(Vec<String>),
    Regex(Regex),
}

pub struct Rules {
    rules: Vec<(Vec<Matcher>, String)>,
    default_answer: String,
}

impl Rules {
    /// Regexes were compiled once by config validation; a failure here would mean validation
    /// was skipped, so it is reported rather than unwrapped.
    pub fn new(settings: &RulesSettings) -> Result<Self, regex::Error> {
        let mut rules = Vec::with_capacity(settings.rules.len());
        for rule in &settings.rules {
            let mut matchers = Vec::new();
            let keywords: Vec<String> = rule
                .keywords
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect();
            if !keywords.is_empty() {
                matchers.push(Matcher::Keywords(keywords));
            }
            if let Some(pattern) = &rule.regex {
                matchers.push(Matcher::Regex(Regex::new(pattern)?));
            }
            rules.push((matchers, rule.answer.clone()));
        }
        Ok(Rules {
            rules,
            default_answer: settings.default_answer.clone(),
        })
    }

    /// A provider with no rules: what a bot gets when no `[llm]` is configured at all.
    pub fn empty(default_answer: String) -> Self {
        Rules {
            rules: Vec::new(),
            default_answer,
        }
    }

    /// The first rule (in file order) that matches, if any.
    pub fn find(&self, text: &str) -> Option<&str> {
        let lowered = text.trim().to_lowercase();
        self.rules
            .iter()
            .find(|(matchers, _)| {
                matchers.iter().any(|matcher| match matcher {
                    Matcher::Keywords(keywords) => keywords.iter().any(|k| lowered.contains(k)),
                    Matcher::Regex(regex) => regex.is_match(text.trim()),
                })
            })
            .map(|(_, answer)| answer.as_str())
    }

    pub fn answer(&self, text: &str) -> &str {
        self.find(text).unwrap_or(&self.default_answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleSettings;

    fn rules() -> Rules {
        Rules::new(&RulesSettings {
            rules: vec![
                RuleSettings {
                    keywords: vec!["Refund".into()],
                    regex: None,
                    answer: "7 days".into(),
                },
                RuleSettings {
                    keywords: vec![],
                    regex: Some("^(人工|human)$".into()),
                    answer: "transfer".into(),
                },
            ],
            default_answer: "unknown".into(),
        })
        .unwrap()
    }

    #[test]
    fn keywords_are_case_insensitive_substrings() {
        assert_eq!(rules().find("how do I get a REFUND?"), Some("7 days"));
    }

    #[test]
    fn regex_matches_trimmed_text() {
        assert_eq!(rules().find(" 人工 "), Some("transfer"));
        assert_eq!(rules().find("人工智能"), None);
    }

    #[test]
    fn default_answer_when_nothing_matches() {
        assert_eq!(rules().answer("weather?"), "unknown");
    }
}
