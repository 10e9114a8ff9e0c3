//! Every storage key botgate writes, one constructor per kind, so the schema is read in one
//! place. Each key starts with `store.key_prefix`; keys about a user or a message are scoped by
//! bot and platform (a message id or user id is only unique within them).
//!
//! The names are stable: memory and claims survive upgrades because these strings do not
//! change. On a Redis Cluster the prefix is a hash tag (`{botgate}`, checked by the config),
//! which puts every key in one slot, so each script's keys are on one node. With
//! `store.shards` the kinds about a conversation or its messages (conversation, claim, reply
//! and its markers, order, jobs, passive, web answer, DingTalk's reply context and card flag)
//! take their conversation's shard prefix from `keyspace.rs` instead, each shard in a slot of
//! its own, and a sender's rate window its sender's; the kinds shared by the deployment
//! (tokens, concurrency slots, app-wide rates, cursors, feedback, the passive fallback) keep
//! `store.key_prefix`.

/// A conversation: its memory and cloud session hang off it.
pub fn conversation(prefix: &str, bot: &str, platform: &str, conversation: &str) -> String {
    format!("{prefix}:{bot}:{platform}:{conversation}")
}

/// A conversation's memory (a list of turns), read ahead by some callers and written back
/// by others, so both come from here.
pub fn memory(conversation_key: &str) -> String {
    format!("{conversation_key}:history")
}

/// A conversation's Bailian session id, when Bailian keeps the memory.
pub fn bailian_session(conversation_key: &str) -> String {
    format!("{conversation_key}:bailian_session")
}

/// That a message was accepted (the dedup claim), holding its job's ticket.
pub fn claim(prefix: &str, bot: &str, platform: &str, message_id: &str) -> String {
    format!("{prefix}:claim:{bot}:{platform}:{message_id}")
}

/// A queued message's stored answer, kept until the job finishes.
pub fn reply(prefix: &str, bot: &str, platform: &str, message_id: &str) -> String {
    format!("{prefix}:reply:{bot}:{platform}:{message_id}")
}

/// That part `chunk` of a reply was claimed for sending.
pub fn part_sent(reply_key: &str, chunk: usize) -> String {
    format!("{reply_key}:sent:{chunk}")
}

/// That a reply's live answer (DingTalk's AI card) was claimed for finishing, or finished.
pub fn live_sent(reply_key: &str) -> String {
    format!("{reply_key}:sent:live")
}

/// Set once a reply's live answer gave up and its parts carry the answer instead, so a retry
/// of the job sends the parts rather than trying the live answer again.
pub fn live_fell_back(reply_key: &str) -> String {
    format!("{reply_key}:live:fell_back")
}

/// A conversation's order: which of its jobs has the turn.
pub fn order(prefix: &str, bot: &str, platform: &str, conversation: &str) -> String {
    format!("{prefix}:order:{bot}:{platform}:{conversation}")
}

/// The jobs waiting behind the one with the turn.
pub fn backlog(order_key: &str) -> String {
    format!("{order_key}:backlog")
}

/// The job stream, its dead letters and their order.
pub fn jobs(prefix: &str) -> String {
    format!("{prefix}:jobs")
}

pub fn dead_jobs(prefix: &str) -> String {
    format!("{prefix}:jobs:dead")
}

pub fn dead_jobs_order(prefix: &str) -> String {
    format!("{prefix}:jobs:dead:order")
}

/// The segment under which a platform's reply-window state lives (`{prefix}:{platform}`).
pub fn passive(prefix: &str, platform: &str) -> String {
    format!("{prefix}:{platform}")
}

/// What a user is owed in a reply window, under its segment (one JSON string).
pub fn passive_box(passive: &str, bot: &str, user: &str) -> String {
    format!("{passive}:box:{bot}:{user}")
}

/// When this deployment first ran with [`passive_box`]: until 48 h after it, what the older
/// layout below left is folded in.
pub fn passive_box_since(prefix: &str) -> String {
    format!("{prefix}:passive:box_since")
}

/// One message's record in a reply window (its deliveries, what was bound to it).
pub fn passive_message(passive: &str, bot: &str, message_id: &str) -> String {
    format!("{passive}:msg:{bot}:{message_id}")
}

/// The older layout (before 2026-12-04), read only to fold it into the box: a user's outbox
/// (owed answers) and its state hash.
pub fn outbox(passive: &str, bot: &str, user: &str) -> String {
    format!("{passive}:outbox:{bot}:{user}")
}

pub fn outbox_state(outbox_key: &str) -> String {
    format!("{outbox_key}:state")
}

/// Set while a bot answers passively because its platform refused active sends.
pub fn passive_fallback(prefix: &str, platform: &str, bot: &str) -> String {
    format!("{prefix}:{platform}:{bot}:passive_fallback")
}

/// A rate limit's window of events.
pub fn rate(prefix: &str, limit: &str) -> String {
    format!("{prefix}:rate:{limit}")
}

/// A concurrency limit's slots.
pub fn slots(prefix: &str, limit: &str) -> String {
    format!("{prefix}:slots:{limit}")
}

/// A platform access token shared by every replica, and the lock of its refresh.
pub fn token(prefix: &str, token: &str) -> String {
    format!("{prefix}:token:{token}")
}

pub fn token_lock(prefix: &str, token: &str) -> String {
    format!("{prefix}:token:{token}:lock")
}

/// Where a 微信客服 account's pull resumes (`next_cursor`); empty `account`: all accounts.
pub fn kf_cursor(prefix: &str, bot: &str, account: &str) -> String {
    format!("{prefix}:wecom:{bot}:kf:{account}:cursor")
}

/// The latest callback's pull token for an account (valid 10 minutes).
pub fn kf_pull_token(prefix: &str, bot: &str, account: &str) -> String {
    format!("{prefix}:wecom:{bot}:kf:{account}:token")
}

/// How many callbacks an account has had: a pull goes on until it stops changing.
pub fn kf_notices(prefix: &str, bot: &str, account: &str) -> String {
    format!("{prefix}:wecom:{bot}:kf:{account}:notices")
}

/// Where and to whom a DingTalk message's answer goes (its `ReplyContext`), by message id.
pub fn dingtalk_reply(prefix: &str, bot: &str, message_id: &str) -> String {
    format!("{prefix}:dingtalk:{bot}:reply:{message_id}")
}

/// That a DingTalk message's AI card was created, so a retry of its job does not create it again.
pub fn dingtalk_card(prefix: &str, bot: &str, message_id: &str) -> String {
    format!("{prefix}:dingtalk:{bot}:card:{message_id}")
}

/// A web visitor's message: `pending` while its answer is made, then the answer itself, so a
/// retry of the message (a dropped stream) is answered from here and never generated twice.
pub fn web_answer(prefix: &str, bot: &str, conversation: &str, message_id: &str) -> String {
    format!("{prefix}:web:{bot}:answer:{conversation}:{message_id}")
}

/// That a web answer was rated (one rating per answer).
pub fn web_rated(answer_key: &str) -> String {
    format!("{answer_key}:rated")
}

/// A bot's ratings, newest first.
pub fn feedback(prefix: &str, bot: &str) -> String {
    format!("{prefix}:feedback:{bot}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renaming a key loses what it holds at upgrade: these are the names in production.
    #[test]
    fn key_names_are_stable() {
        let conversation = conversation("bg", "shop", "wechat", "o1");
        assert_eq!(conversation, "bg:shop:wechat:o1");
        assert_eq!(memory(&conversation), "bg:shop:wechat:o1:history");
        assert_eq!(
            bailian_session(&conversation),
            "bg:shop:wechat:o1:bailian_session"
        );
        assert_eq!(
            claim("bg", "shop", "wechat", "m1"),
            "bg:claim:shop:wechat:m1"
        );
        let reply = reply("bg", "shop", "wechat", "m1");
        assert_eq!(part_sent(&reply, 2), "bg:reply:shop:wechat:m1:sent:2");
        assert_eq!(live_sent(&reply), "bg:reply:shop:wechat:m1:sent:live");
        assert_eq!(
            live_fell_back(&reply),
            "bg:reply:shop:wechat:m1:live:fell_back"
        );
        assert_eq!(
            dingtalk_card("bg", "shop", "m1"),
            "bg:dingtalk:shop:card:m1"
        );
        assert_eq!(
            backlog(&order("bg", "shop", "wechat", "o1")),
            "bg:order:shop:wechat:o1:backlog"
        );
        assert_eq!(
            (jobs("bg"), dead_jobs("bg"), dead_jobs_order("bg")),
            (
                "bg:jobs".into(),
                "bg:jobs:dead".into(),
                "bg:jobs:dead:order".into()
            )
        );
        let passive = passive("bg", "wechat");
        assert_eq!(
            outbox_state(&outbox(&passive, "shop", "o1")),
            "bg:wechat:outbox:shop:o1:state"
        );
        assert_eq!(
            passive_message(&passive, "shop", "m1"),
            "bg:wechat:msg:shop:m1"
        );
        assert_eq!(passive_box(&passive, "shop", "o1"), "bg:wechat:box:shop:o1");
        assert_eq!(passive_box_since("bg"), "bg:passive:box_since");
        assert_eq!(
            passive_fallback("bg", "wechat", "shop"),
            "bg:wechat:shop:passive_fallback"
        );
        assert_eq!(
            (rate("bg", "x"), slots("bg", "x")),
            ("bg:rate:x".into(), "bg:slots:x".into())
        );
        let answer = web_answer("bg", "shop", "v-1", "m-1");
        assert_eq!(answer, "bg:web:shop:answer:v-1:m-1");
        assert_eq!(web_rated(&answer), "bg:web:shop:answer:v-1:m-1:rated");
        assert_eq!(feedback("bg", "shop"), "bg:feedback:shop");
        assert_eq!(
            (token("bg", "t"), token_lock("bg", "t")),
            ("bg:token:t".into(), "bg:token:t:lock".into())
        );
    }
}
