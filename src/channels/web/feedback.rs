//! Ratings of web answers: one per answer, kept newest first per bot with the question and
//! the answer, for whoever improves the Bailian application (`botgate feedback list`).

use std::time::Duration;

use botgate_web::{FeedbackRequest, Visitor};
use serde::{Deserialize, Serialize};

use super::answer::Stored;
use super::WebBot;
use crate::metrics::FeedbackLabels;
use crate::store::StoreError;

/// Ratings kept per bot, and how long a bot's list lives without a new one.
pub const FEEDBACK_KEPT: usize = 10_000;
const FEEDBACK_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// One rating as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackEntry {
    /// Unix seconds.
    pub at: u64,
    pub bot: String,
    pub platform: String,
    pub conversation: String,
    pub message_id: String,
    pub rating: String,
    pub question: String,
    pub answer: String,
}

impl WebBot {
    /// Records a rating of one of the visitor's answers; false when there is no such answer
    /// (unknown, another visitor's, or expired). A second rating of an answer is ignored.
    pub(super) async fn record_feedback(
        &self,
        request: &FeedbackRequest,
        visitor: &Visitor,
    ) -> Result<bool, StoreError> {
        let store = self.conversations.store();
        let key = self.answer_key(&visitor.conversation, &request.id);
        let Some(stored) = store.get(&key).await? else {
            return Ok(false);
        };
        let Ok(stored) = serde_json::from_str::<Stored>(&stored) else {
            // Still being made: nothing to rate yet.
            return Ok(false);
        };
        let rating = request.rating.as_str();
        if !store
            .claim(
                &crate::keys::web_rated(&key),
                rating,
                super::answer::ANSWER_TTL,
            )
            .await?
        {
            return Ok(true);
        }
        let entry = FeedbackEntry {
            at: crate::clock::unix_secs(),
            bot: self.name.clone(),
            platform: "web".to_owned(),
            conversation: visitor.conversation.clone(),
            message_id: request.id.clone(),
            rating: rating.to_owned(),
            question: stored.question,
            answer: stored.done.text,
        };
        let list = crate::keys::feedback(self.conversations.key_prefix(), &self.name);
        let json = serde_json::to_string(&entry).unwrap_or_default();
        store
            .push_recent(&list, &json, FEEDBACK_KEPT, FEEDBACK_TTL)
            .await?;
        self.conversations
            .metrics()
            .feedback
            .get_or_create(&FeedbackLabels {
                bot: self.name.clone(),
                rating,
            })
            .inc();
        tracing::info!(bot = %self.name, rating, "answer rated");
        Ok(true)
    }
}
