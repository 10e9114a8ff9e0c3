//! The engine's side of live answers (a card the answer streams into): finishing one exactly once, or
//! recording that it gave up so the reply's parts carry the answer instead.

use std::time::Duration;

use super::{Engine, Failure, Mark};
use crate::channels::Live;
use crate::core::job::JobPayload;
use crate::delivery::queue::Job;

/// A job's reply, and how it is shown.
pub(super) struct Answered {
    pub(super) text: String,
    /// The platform's live answer, finished with `text` instead of sending parts.
    pub(super) live: Option<Live>,
    /// `text` is the notice of a failed generation (the live answer shows it as failed).
    pub(super) failed: bool,
}

impl Engine {
    /// Finishes the live answer with the stored reply, once (its own sent-marker). False: it
    /// could not take the reply, now or on an earlier attempt, and the parts must.
    pub(super) async fn finish_live(
        &self,
        consumer: &str,
        job: &Job,
        reply_key: &str,
        platform: &'static str,
        live: &Live,
        answered: &Answered,
    ) -> Result<bool, Failure> {
        let store_error =
            |error: crate::store::StoreError| Failure::Retry(format!("live marker: {error}"));
        let fell_back = crate::keys::live_fell_back(reply_key);
        if self
            .store
            .get(&fell_back)
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Ok(false);
        }
        let marker = crate::keys::live_sent(reply_key);
        let finish = || live.finish(&answered.text, answered.failed);
        // Finished live answers end the job: its acknowledgement comes next, and the marker is
        // written only if that fails (see `Delivered::unmarked`).
        match self
            .send_once(consumer, job, &marker, platform, Mark::Deferred, finish)
            .await
        {
            Ok(()) => Ok(true),
            Err(Failure::FellBack) => {
                // Recorded before any part goes, so a retry of the job sends parts, never the
                // live answer again: the user gets the answer once.
                let ttl = Duration::from_secs(self.settings.dedup_ttl_secs);
                self.store
                    .set(&fell_back, "1", ttl)
                    .await
                    .map_err(store_error)?;
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// Marks the job's live answer failed, if it has one that was shown: the job is given up.
    pub(super) async fn abandon_live(&self, payload: &JobPayload) {
        if let Some(live) = self.sender(payload).and_then(|sender| sender.live(payload)) {
            live.abandon().await;
        }
    }
}
