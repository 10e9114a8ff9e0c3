//! 微信客服 (kf): a callback only says "there is something to pull"; the messages come from
//! `kf/sync_msg`, page by page from a cursor kept in the store.
//!
//! One replica pulls an account at a time (a lease per `open_kfid`): two pulling from one
//! cursor would fetch the same messages. A notice that arrives while another replica holds
//! the lease is not lost: every notice bumps a counter first, and the holder pulls again until
//! the counter stands still across a whole round, then checks once more after letting go. The
//! cursor is saved after every page, once its messages are durably queued, so a crash or a
//! restart resumes where the last saved page ended, and a page fetched twice is deduplicated
//! by `msgid` in the queue's claim.

use std::sync::Arc;
use std::time::Duration;

use botgate_wecom::kf::{
    parse_kf_item, KfItem, SendMsgId, SendMsgOnEventRequest, SyncMsgRequest, SyncMsgResponse,
    MAX_SYNC_LIMIT,
};
use botgate_wecom::KfNotice;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::api::WecomApi;
use crate::channels::channel::NoticeError;
use crate::channels::source::Admit;
use crate::keys;
use crate::limits::{Limits, Slot};
use crate::metrics::{DeliveryLabels, Metrics};
use crate::store::Store;
use crate::telemetry::{log_id, log_message_id};

/// How long a pull holds its account without renewing (renewed before every page).
const PULL_LEASE: Duration = Duration::from_secs(30);
/// The callback's pull token lives 10 minutes.
const PULL_TOKEN_TTL: Duration = Duration::from_secs(600);
const NOTICES_TTL: Duration = Duration::from_secs(86_400);
/// WeCom keeps 3 days of messages; a cursor unused for this long has nothing left to resume.
const CURSOR_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long the callback waits for its pull before acknowledging (WeCom waits 5 s); a pull
/// still running goes on after the acknowledgement.
const WAIT_IN_CALLBACK: Duration = Duration::from_secs(3);
/// Waits before the retries of a failed pull.
const PULL_RETRIES: [Duration; 3] = [
    Duration::from_millis(1000),
    Duration::from_secs(3),
    Duration::from_secs(10),
];
/// A first pull (no cursor yet) returns up to 3 days of history: only recent questions are
/// answered, not those asked before the bot was there.
const FIRST_PULL_MAX_AGE_SECS: u64 = 600;

/// The conversation of a customer with one customer-service account.
pub fn kf_conversation(open_kfid: &str, customer: &str) -> String {
    format!("kf:{open_kfid}:{customer}")
}

/// `(open_kfid, external_userid)` of a customer-service conversation; `None` for app members.
pub fn kf_customer(conversation: &str) -> Option<(&str, &str)> {
    conversation.strip_prefix("kf:")?.split_once(':')
}

pub struct KfPuller {
    pub(super) api: Arc<WecomApi>,
    pub(super) store: Store,
    pub(super) limits: Limits,
    pub(super) prefix: String,
    pub(super) bot: String,
    /// What a customer entering a session is greeted with.
    pub(super) welcome: String,
    pub(super) metrics: Arc<Metrics>,
    pub(super) tasks: TaskTracker,
}

impl KfPuller {
    /// Acts on one callback: records it, then pulls (here, or on the replica already pulling).
    /// An error means nothing was lost but the pull did not finish: the callback is refused so
    /// WeCom sends it again.
    pub async fn notice(
        self: &Arc<Self>,
        notice: KfNotice,
        inlet: Arc<dyn Admit>,
    ) -> Result<(), NoticeError> {
        let account = notice.open_kfid.clone().unwrap_or_default();
        let keys = self.keys(&account);
        self.store
            .set(&keys.token, &notice.token, PULL_TOKEN_TTL)
            .await?;
        self.store.incr(&keys.notices, NOTICES_TTL).await?;
        let puller = self.clone();
        // Tracked, so shutdown waits for a pull that outlives its callback; in this span.
        let pull = self.tasks.spawn(
            async move {
                let mut drained = puller.drain(&account, inlet.as_ref()).await;
                // WeCom calls back only when something new arrives: a pull given up after the
                // callback was acknowledged would leave its messages until the customer writes
                // again, so a failed pull is tried again a few times first.
                for backoff in PULL_RETRIES {
                    let Err(error) = &drained else { break };
                    tracing::warn!(bot = %puller.bot, %error, "kf pull failed; trying again");
                    tokio::time::sleep(crate::clock::jittered(backoff, backoff / 2)).await;
                    drained = puller.drain(&account, inlet.as_ref()).await;
                }
                if let Err(error) = &drained {
                    // The saved cursor keeps what is left for the next callback.
                    tracing::error!(bot = %puller.bot, %error, "kf pull stopped");
                }
                drained
            }
            .in_current_span(),
        );
        match tokio::time::timeout(WAIT_IN_CALLBACK, pull).await {
            Ok(Ok(pulled)) => pulled,
            Ok(Err(error)) => Err(NoticeError::Platform(format!("kf pull task: {error}"))),
            Err(_) => {
                tracing::info!(bot = %self.bot, "kf pull still running; acknowledged, it goes on");
                Ok(())
            }
        }
    }

    /// Pulls `account` until no notice is left unserved, unless another replica holds it.
    async fn drain(&self, account: &str, inlet: &dyn Admit) -> Result<(), NoticeError> {
        let keys = self.keys(account);
        loop {
            let Some(slot) = self.limits.acquire(&keys.lease, 1, PULL_LEASE).await? else {
                // The holder sees this notice's count and pulls for it.
                return Ok(());
            };
            let pulled = self.rounds(account, &keys, inlet, &slot).await;
            slot.release().await?;
            let served = pulled?;
            // A notice counted after the last round's check found the lease still held.
            if self.notices(&keys).await? == served {
                return Ok(());
            }
        }
    }

    /// Pulls until a whole round saw no new notice; returns the count it served.
    async fn rounds(
        &self,
        account: &str,
        keys: &KfKeys,
        inlet: &dyn Admit,
        slot: &Slot,
    ) -> Result<u64, NoticeError> {
        loop {
            let seen = self.notices(keys).await?;
            self.pull(account, keys, inlet, slot).await?;
            if self.notices(keys).await? == seen {
                return Ok(seen);
            }
        }
    }

    /// Every page from the saved cursor on, while WeCom says there is more (a page may be
    /// empty and still have more behind it).
    async fn pull(
        &self,
        account: &str,
        keys: &KfKeys,
        inlet: &dyn Admit,
        slot: &Slot,
    ) -> Result<(), NoticeError> {
        let mut cursor = self.store.get(&keys.cursor).await?;
        let first = cursor.is_none();
        // Without the callback's token the API still answers, under stricter limits.
        let token = self.store.get(&keys.token).await?;
        loop {
            if !slot.renew().await? {
                return Err(NoticeError::Platform(
                    "lost the kf pull lease; another replica goes on".into(),
                ));
            }
            let request = SyncMsgRequest {
                cursor: cursor.clone().filter(|cursor| !cursor.is_empty()),
                token: token.clone(),
                limit: Some(MAX_SYNC_LIMIT),
                voice_format: None,
                open_kfid: (!account.is_empty()).then(|| account.to_owned()),
            };
            let body = self
                .api
                .call("kf/sync_msg", &request)
                .await
                .map_err(|error| NoticeError::Platform(format!("kf/sync_msg: {error:?}")))?;
            let page = SyncMsgResponse::parse(&body)
                .map_err(|error| NoticeError::Platform(format!("kf/sync_msg page: {error}")))?;
            let now = crate::clock::unix_secs();
            for value in &page.msg_list {
                let sent = value.get("send_time").and_then(serde_json::Value::as_u64);
                if first && sent.is_some_and(|sent| sent + FIRST_PULL_MAX_AGE_SECS < now) {
                    continue;
                }
                match parse_kf_item(value) {
                    Ok(item) => self.handle(item, inlet).await?,
                    Err(error) => {
                        tracing::warn!(bot = %self.bot, %error, "kf item skipped");
                    }
                }
            }
            if !page.next_cursor.is_empty() {
                self.store
                    .set(&keys.cursor, &page.next_cursor, CURSOR_TTL)
                    .await?;
                cursor = Some(page.next_cursor.clone());
            }
            if !page.more_to_pull() {
                return Ok(());
            }
        }
    }

    async fn handle(&self, item: KfItem, inlet: &dyn Admit) -> Result<(), NoticeError> {
        match item {
            KfItem::Customer {
                mut message,
                open_kfid,
            } => {
                message.conversation = kf_conversation(&open_kfid, &message.sender);
                inlet.admit(&self.bot, &message).await?;
                tracing::debug!(message_id = %log_message_id(&message.message_id), "kf message admitted");
            }
            KfItem::EnterSession {
                welcome_code: Some(code),
                external_userid,
                ..
            } => {
                // The code lives 20 s: a static greeting now, never an LLM answer later.
                let msgid = SendMsgId::derive_from(&code);
                let body = SendMsgOnEventRequest::text(&code, Some(msgid), &self.welcome);
                if let Err(error) = self.api.call("kf/send_msg_on_event", &body).await {
                    tracing::warn!(bot = %self.bot, customer = %log_id(&external_userid), ?error, "kf welcome not sent");
                }
            }
            KfItem::SendFailed {
                fail_msgid,
                fail_type,
            } => {
                // fail_msgid is the hash botgate sent the part under (see the sender).
                tracing::warn!(bot = %self.bot, msgid = %fail_msgid, fail_type, "WeCom could not deliver a 微信客服 answer (msg_send_fail)");
                self.metrics
                    .deliveries
                    .get_or_create(&DeliveryLabels {
                        platform: "wecom",
                        outcome: "send_failed",
                        code: format!("fail_type_{fail_type}"),
                    })
                    .inc();
            }
            KfItem::Servicer { .. } => {
                tracing::debug!(bot = %self.bot, "a human servicer wrote to a customer");
            }
            KfItem::EnterSession { .. } | KfItem::Other { .. } => {}
        }
        Ok(())
    }

    async fn notices(&self, keys: &KfKeys) -> Result<u64, NoticeError> {
        Ok(self
            .store
            .get(&keys.notices)
            .await?
            .and_then(|count| count.parse().ok())
            .unwrap_or(0))
    }

    fn keys(&self, account: &str) -> KfKeys {
        KfKeys {
            cursor: keys::kf_cursor(&self.prefix, &self.bot, account),
            token: keys::kf_pull_token(&self.prefix, &self.bot, account),
            notices: keys::kf_notices(&self.prefix, &self.bot, account),
            lease: format!("wecom:kf:{}:{account}", self.bot),
        }
    }
}

struct KfKeys {
    cursor: String,
    token: String,
    notices: String,
    /// The name of the pull lease (a slot of one, in [`Limits`]).
    lease: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_conversations_carry_the_account() {
        let conversation = kf_conversation("wk1", "wm2");
        assert_eq!(kf_customer(&conversation), Some(("wk1", "wm2")));
        assert_eq!(kf_customer("zhangsan"), None);
    }
}
