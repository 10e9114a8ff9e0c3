//! Sending a stored reply: the live answer finished, or every part sent once, in order, each
//! claimed before it goes so that two workers never both send it.

use std::time::Duration;

use super::live::Answered;
use super::{Engine, Failure, Mark, PART_BUSY_POLL, PART_CLAIM_TTL, SEND_BACKOFF};
use crate::channels::send::SendError;
use crate::core::job::JobPayload;
use crate::delivery::queue::{Job, PartClaim};
use crate::metrics::DeliveryLabels;

impl Engine {
    /// Finishes the live answer with the reply, or else sends every part of it once, in order;
    /// when the platform refuses this way of sending, its fallback takes the parts not sent
    /// yet. Returns how many parts there were, and the sent-marker left unwritten (see
    /// [`Delivered::unmarked`]).
    pub(super) async fn deliver(
        &self,
        consumer: &str,
        job: &Job,
        payload: &JobPayload,
        reply_key: &str,
        answered: &Answered,
    ) -> Result<Delivered, Failure> {
        let text = answered.text.as_str();
        let sender = self.sender(payload).ok_or_else(|| {
            Failure::Dead(format!(
                "bot {} cannot deliver on {}",
                payload.bot, payload.platform
            ))
        })?;
        let platform = payload
            .platform()
            .map_or("unknown", |platform| platform.as_str());
        if let Some(live) = &answered.live {
            if self
                .finish_live(consumer, job, reply_key, platform, live, answered)
                .await?
            {
                return Ok(Delivered {
                    parts: 0,
                    unmarked: Some(crate::keys::live_sent(reply_key)),
                });
            }
        }
        let parts = sender.parts(payload, text);
        let chunks = parts.len();
        for (chunk, part) in parts.iter().enumerate() {
            let last = chunk + 1 == chunks;
            let sent = self
                .send_once(
                    consumer,
                    job,
                    &marker(reply_key, chunk),
                    platform,
                    if last { Mark::Deferred } else { Mark::Now },
                    || sender.send(payload, chunk, chunks, part),
                )
                .await;
            if let Err(Failure::FellBack) = sent {
                sender
                    .fall_back(payload, &parts[chunk..])
                    .await
                    .map_err(|error| Failure::Retry(format!("fallback: {error}")))?;
                // Done: the fallback holds the rest. Every part's marker goes with the job.
                return Ok(Delivered {
                    parts: chunks,
                    unmarked: None,
                });
            }
            sent?;
        }
        Ok(Delivered {
            parts: chunks,
            unmarked: chunks.checked_sub(1).map(|last| marker(reply_key, last)),
        })
    }

    /// Sends one part unless it went out already. The send is claimed first (atomically,
    /// while this worker holds the job, and again before every attempt), so two workers never
    /// send the same part; transient failures are retried with backoff and jitter, permanent
    /// ones end the job. With [`Mark::Deferred`] a successful send is not marked here: the
    /// caller acknowledges the job next, and marks the part only if that fails.
    pub(super) async fn send_once<F, Fut>(
        &self,
        consumer: &str,
        job: &Job,
        marker: &str,
        platform: &'static str,
        mark: Mark,
        send: F,
    ) -> Result<(), Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), SendError>>,
    {
        let store_error =
            |error: crate::store::StoreError| Failure::Retry(format!("sent-marker: {error}"));
        let metrics = self.conversations.metrics();
        let record = |outcome: &'static str, code: &str| {
            metrics
                .deliveries
                .get_or_create(&DeliveryLabels {
                    platform,
                    outcome,
                    code: code.to_owned(),
                })
                .inc();
        };
        let mut attempt = 0;
        loop {
            match self
                .queue
                .claim_part(consumer, job, marker, PART_CLAIM_TTL)
                .await
                .map_err(store_error)?
            {
                PartClaim::Mine => {}
                PartClaim::Sent => return Ok(()),
                PartClaim::Lost => return Err(Failure::Lost),
                PartClaim::Busy => {
                    // The worker that held the job before is still sending it; its claim lapses
                    // within PART_CLAIM_TTL if it stopped.
                    tokio::time::sleep(PART_BUSY_POLL).await;
                    continue;
                }
            }
            attempt += 1;
            match send().await {
                Ok(()) => {
                    record("delivered", "0");
                    if mark == Mark::Now {
                        self.mark_sent(marker).await.map_err(store_error)?;
                    }
                    return Ok(());
                }
                Err(SendError::Fallback { code, message }) => {
                    record("fallback", &code);
                    tracing::warn!(%code, %message, "delivery falls back");
                    return Err(Failure::FellBack);
                }
                Err(SendError::Permanent { code, message }) => {
                    record("failed", &code);
                    self.release_part(marker).await;
                    return Err(Failure::Dead(format!(
                        "{platform} refused the delivery ({code}): {message}"
                    )));
                }
                Err(error) if attempt >= self.settings.send_attempts => {
                    record("dead", error.code());
                    self.release_part(marker).await;
                    return Err(Failure::Dead(format!(
                        "{platform} delivery failed {attempt} times, last: {error}"
                    )));
                }
                Err(error) => {
                    record("retried", error.code());
                    tracing::warn!(%error, attempt, "send failed; retrying");
                    let jitter = getrandom::u32().unwrap_or(0) % 1000;
                    let backoff = SEND_BACKOFF * 2u32.pow(attempt.min(5) - 1);
                    tokio::time::sleep(backoff.mul_f64(0.5 + f64::from(jitter) / 2000.0)).await;
                }
            }
        }
    }

    /// Records that what `marker` stands for went out, for as long as duplicates are screened.
    pub(super) async fn mark_sent(&self, marker: &str) -> Result<(), crate::store::StoreError> {
        let ttl = Duration::from_secs(self.settings.dedup_ttl_secs);
        self.store.set(marker, "sent", ttl).await
    }

    /// A part given up on is nobody's to send, so a replay of the dead letter sends it at once.
    pub(super) async fn release_part(&self, marker: &str) {
        if let Err(error) = self.store.delete(&[marker]).await {
            tracing::debug!(%error, "could not release a part's claim; it lapses");
        }
    }
}

/// What [`Engine::deliver`] did.
pub(super) struct Delivered {
    /// How many parts the reply had.
    pub(super) parts: usize,
    /// The marker of the last thing sent (the last part, or the live answer), which was sent
    /// but not marked: the job is acknowledged right after, and an acknowledged job is never
    /// run again, so the marker would only be deleted with the others. It is written only if
    /// the acknowledgement fails, so that a reclaim does not send it twice. Worst case the
    /// same as before: the acknowledgement is one round trip after the send, as the marker was.
    pub(super) unmarked: Option<String>,
}

impl Delivered {
    /// Nothing was sent, so nothing is left unmarked.
    pub(super) fn nothing() -> Self {
        Delivered {
            parts: 0,
            unmarked: None,
        }
    }
}

/// The sent-marker of one part of a reply.
pub(super) fn marker(reply_key: &str, chunk: usize) -> String {
    crate::keys::part_sent(reply_key, chunk)
}
