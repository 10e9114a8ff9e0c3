//! A DingTalk AI card as a live answer (outbound.md §4.4): created and delivered with the
//! answer's first piece, its content replaced with the text so far at most once per
//! [`CARD_UPDATE_INTERVAL`] and within a per-robot budget shared by all replicas, then
//! finalized with the stored reply (finished, or failed).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use botgate_dingtalk::outbound::{
    out_track_id, CardCreateAndDeliver, CardInstanceUpdate, CardStreamingUpdate, FlowStatus,
    CARD_CREATE_AND_DELIVER_PATH, CARD_INSTANCES_PATH, CARD_SCOPES, CARD_STREAMING_PATH,
};
use reqwest::Method;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::api::ApiFailure;
use super::robot::{Robot, REPLY_CONTEXT_TTL};
use crate::channels::live::LiveAnswer;
use crate::channels::send::SendError;
use crate::core::job::JobPayload;
use crate::limits::Limits;
use crate::telemetry::log_message_id;

/// At most one intermediate update per card this often: DingTalk throttles streaming updates
/// with 403 and each one costs API quota (outbound.md §4.4: ~1 per 300–500 ms per card).
pub const CARD_UPDATE_INTERVAL: Duration = Duration::from_millis(500);
/// Intermediate updates per robot per second, across replicas: well under the ~50 QPS
/// DingTalk allows a robot, leaving room for the final updates, which are never skipped.
pub const CARD_UPDATES_PER_SECOND: u32 = 20;
/// A final update refused once (throttling) is tried again after this long.
const FINAL_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A card bot's card settings, shared by its jobs.
pub struct CardSettings {
    pub template_id: String,
    pub content_key: String,
    pub limits: Limits,
}

/// Whether the card is there to be updated.
#[derive(Debug, Clone)]
enum Opened {
    Ready,
    /// It could not be created: the answer goes as markdown ([`SendError::Fallback`]).
    Refused(SendError),
}

/// The card of one job's answer.
pub struct DingtalkCard {
    card: Arc<Card>,
    text: watch::Sender<String>,
    stop: watch::Sender<bool>,
    /// The streaming task once begun; taken by whoever stops it.
    task: Mutex<Option<JoinHandle<Opened>>>,
    begun: std::sync::atomic::AtomicBool,
}

/// What the streaming task and the final updates share.
struct Card {
    robot: Arc<Robot>,
    settings: Arc<CardSettings>,
    job: JobPayload,
    out_track_id: String,
}

impl DingtalkCard {
    pub fn new(robot: Arc<Robot>, settings: Arc<CardSettings>, job: &JobPayload) -> Self {
        let out_track_id = out_track_id(&robot.bot, &job.message_id);
        DingtalkCard {
            card: Arc::new(Card {
                robot,
                settings,
                job: job.clone(),
                out_track_id,
            }),
            text: watch::Sender::new(String::new()),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
            begun: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn task(&self) -> MutexGuard<'_, Option<JoinHandle<Opened>>> {
        // Only an Option is swapped under it: a panic cannot leave it half-written.
        self.task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops intermediate updates (waiting for one in flight, so none lands after the final
    /// one) and says whether the card exists, creating it if streaming never began.
    async fn stop(&self) -> Opened {
        let _ = self.stop.send(true);
        let task = self.task().take();
        match task {
            Some(task) => match task.await {
                Ok(opened) => opened,
                Err(_) => self.card.open().await,
            },
            None => self.card.open().await,
        }
    }

    /// Starts the card: created now, then updated as the answer grows.
    fn begin(&self) {
        if self.begun.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let card = self.card.clone();
        let text = self.text.subscribe();
        let stop = self.stop.subscribe();
        *self.task() = Some(crate::spawn_traced(
            async move { card.stream(text, stop).await },
        ));
    }
}

impl LiveAnswer for DingtalkCard {
    fn push(&self, delta: &str) {
        self.begin();
        self.text.send_modify(|text| text.push_str(delta));
    }

    async fn finish(&self, text: &str, failed: bool) -> Result<(), SendError> {
        if let Opened::Refused(error) = self.stop().await {
            return Err(error);
        }
        self.card.finalize(text, failed).await
    }

    async fn abandon(&self) {
        // Never creates a card: one that was never shown needs no failed state.
        let _ = self.stop.send(true);
        let task = self.task().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if !self.card.exists().await {
            return;
        }
        let so_far = self.text.borrow().clone();
        let update = CardStreamingUpdate::new(
            &self.card.out_track_id,
            &crate::clock::random_id(),
            &self.card.settings.content_key,
            &so_far,
        )
        .last(true);
        self.card.streaming(&update).await.ok();
        self.card.state(FlowStatus::Failed, None).await.ok();
        tracing::debug!(message_id = %self.card.message_id(), "AI card marked failed");
    }
}

impl Card {
    fn message_id(&self) -> String {
        log_message_id(&self.job.message_id).to_string()
    }

    fn created_key(&self) -> String {
        let sender = &self.robot;
        let prefix = sender.prefix(&self.job.conversation);
        crate::keys::dingtalk_card(prefix, &sender.bot, &self.job.message_id)
    }

    /// Whether this job's card was created (here or by an earlier attempt of the job).
    async fn exists(&self) -> bool {
        matches!(self.robot.store.get(&self.created_key()).await, Ok(Some(_)))
    }

    /// Creates and delivers the card, unless this job's card already exists.
    async fn open(&self) -> Opened {
        if self.exists().await {
            return Opened::Ready;
        }
        let sender = &self.robot;
        let created = self.created_key();
        let context = match sender.context(&self.job).await {
            Ok(context) => context,
            Err(error) => return Opened::Refused(fallback(error.code(), &error.to_string())),
        };
        let Some(body) =
            CardCreateAndDeliver::new(&self.settings.template_id, &self.out_track_id, &context)
        else {
            return Opened::Refused(fallback(
                "no_card_recipient",
                "the message has no robotCode, or a one-to-one sender without a userid",
            ));
        };
        match sender
            .api
            .call(Method::POST, CARD_CREATE_AND_DELIVER_PATH, body.to_json())
            .await
        {
            Ok(()) => {
                if let Err(error) = sender.store.set(&created, "1", REPLY_CONTEXT_TTL).await {
                    tracing::warn!(%error, "could not record that the card was created");
                }
                Opened::Ready
            }
            Err(failure) => {
                let code = failure.code();
                let (status, scopes, reason) = match &failure {
                    ApiFailure::Refused { status, error } => (
                        *status,
                        error.accessdenieddetail.required_scopes.join(","),
                        error.message.clone(),
                    ),
                    ApiFailure::Unreachable(reason) | ApiFailure::NoToken(reason) => {
                        (0, String::new(), reason.clone())
                    }
                };
                if status == 403 {
                    let scopes = if scopes.is_empty() {
                        CARD_SCOPES.join(" and ")
                    } else {
                        scopes
                    };
                    tracing::warn!(message_id = %self.message_id(), %code, %scopes, "DingTalk refused the AI card (a missing permission, or throttling); answering with markdown. If `scopes` names permissions, grant them to the app in the developer console");
                } else {
                    tracing::warn!(message_id = %self.message_id(), %code, status, %reason, "could not create the AI card; answering with markdown");
                }
                Opened::Refused(fallback(&code, "AI card not created"))
            }
        }
    }

    /// Creates the card, then shows the text so far each time it grew, no more often than
    /// [`CARD_UPDATE_INTERVAL`], until stopped. An update without budget is skipped, never
    /// queued: the next one (or the final one) carries the whole text anyway.
    async fn stream(
        &self,
        mut text: watch::Receiver<String>,
        mut stop: watch::Receiver<bool>,
    ) -> Opened {
        let opened = self.open().await;
        if !matches!(opened, Opened::Ready) {
            return opened;
        }
        let mut inputting = false;
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => break,
                changed = text.changed() => if changed.is_err() { break },
            }
            let content = text.borrow_and_update().clone();
            if content.is_empty() {
                continue;
            }
            if !inputting {
                inputting = true;
                if let Err(failure) = self.state(FlowStatus::Inputting, None).await {
                    tracing::debug!(code = %failure.code(), "card not switched to inputting");
                }
            }
            let guid = crate::clock::random_id();
            if self.budget(&guid).await {
                let update = CardStreamingUpdate::new(
                    &self.out_track_id,
                    &guid,
                    &self.settings.content_key,
                    &content,
                );
                if let Err(failure) = self.streaming(&update).await {
                    // Throttled (403) or a blip: the next update carries the whole text.
                    tracing::debug!(code = %failure.code(), "card update refused; skipped");
                }
            } else {
                tracing::debug!("card update budget spent; update skipped");
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => break,
                _ = tokio::time::sleep(CARD_UPDATE_INTERVAL) => {}
            }
        }
        Opened::Ready
    }

    /// Whether the robot's shared budget has room for one more intermediate update.
    async fn budget(&self, guid: &str) -> bool {
        let key = format!("dingtalk-card:{}", self.robot.robot_code);
        self.settings
            .limits
            .allow(&key, guid, CARD_UPDATES_PER_SECOND, Duration::from_secs(1))
            .await
            .unwrap_or(false)
    }

    /// The final content and state. A refused final update (tried twice: throttling passes)
    /// marks the card failed and hands the answer to markdown.
    async fn finalize(&self, text: &str, failed: bool) -> Result<(), SendError> {
        let update = |guid: &str| {
            CardStreamingUpdate::new(&self.out_track_id, guid, &self.settings.content_key, text)
                .last(failed)
        };
        let mut result = self.streaming(&update(&crate::clock::random_id())).await;
        if result.is_err() {
            tokio::time::sleep(FINAL_RETRY_PAUSE).await;
            result = self.streaming(&update(&crate::clock::random_id())).await;
        }
        if let Err(failure) = result {
            let code = failure.code();
            tracing::warn!(message_id = %self.message_id(), %code, "the AI card's final update failed; answering with markdown");
            self.state(FlowStatus::Failed, None).await.ok();
            return Err(fallback(&code, "AI card not finalized"));
        }
        let status = match failed {
            true => FlowStatus::Failed,
            false => FlowStatus::Finished,
        };
        let content = Some((self.settings.content_key.as_str(), text));
        if let Err(failure) = self.state(status, content).await {
            // The content is final already; only the state label is behind.
            tracing::warn!(message_id = %self.message_id(), code = %failure.code(), "the AI card's final state was not set");
        }
        tracing::debug!(message_id = %self.message_id(), failed, "AI card finalized");
        Ok(())
    }

    async fn streaming(&self, update: &CardStreamingUpdate) -> Result<(), ApiFailure> {
        self.robot
            .api
            .call(Method::PUT, CARD_STREAMING_PATH, update.to_json())
            .await
    }

    async fn state(
        &self,
        status: FlowStatus,
        content: Option<(&str, &str)>,
    ) -> Result<(), ApiFailure> {
        let update = CardInstanceUpdate::new(&self.out_track_id, status, content);
        self.robot
            .api
            .call(Method::PUT, CARD_INSTANCES_PATH, update.to_json())
            .await
    }
}

fn fallback(code: &str, message: &str) -> SendError {
    SendError::Fallback {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}
