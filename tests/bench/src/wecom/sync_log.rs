//! The customer messages waiting in the fake `kf/sync_msg`, handed out by cursor as WeCom does:
//! a pull from cursor X gets what was queued after X, a page at most, and the cursor after it.
//!
//! WeCom's cursor is opaque; this one is `cursor-<messages before it>`, so a pull from an old
//! cursor (a cursor saved late, or two pulls of one account at once) hands messages out again,
//! and the log counts every message handed out more than once.

use botgate_wecom::kf::KfMessage;
use botgate_wecom::simulator::sync_msg_response;
use serde_json::Value;

use super::{KF_ACCOUNT, KF_TOKEN_PREFIX};

/// Messages per page: below WeCom's 1000, so that a busy account's backlog takes several pages
/// (and `has_more`, and a cursor saved per page) as it does when customers pour in.
pub const PAGE_ITEMS: usize = 100;
const CURSOR_PREFIX: &str = "cursor-";
/// Problems kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

/// What the pulls added up to.
#[derive(Debug, Default, Clone)]
pub struct SyncStats {
    pub calls: u64,
    /// Calls that returned at least one message.
    pub pages: u64,
    /// Messages handed out, repeats included.
    pub items: u64,
    /// Messages handed out again: the gateway's dedup by msgid must absorb them.
    pub again: u64,
    /// Pulls without the pull token of a callback (WeCom serves them under stricter limits).
    pub without_token: u64,
    /// Pulls refused: an unknown cursor or another account.
    pub refused: u64,
    pub samples: Vec<String>,
}

impl SyncStats {
    fn note(&mut self, problem: String) {
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(problem);
        }
    }
}

#[derive(Default)]
pub struct SyncLog {
    items: Vec<KfMessage>,
    /// How often each of `items` was handed out.
    handed: Vec<u32>,
    stats: SyncStats,
}

impl SyncLog {
    /// Customer messages that arrived, in order; pulls see them from now on.
    pub fn queue(&mut self, items: Vec<KfMessage>) {
        self.handed.extend(std::iter::repeat_n(0, items.len()));
        self.items.extend(items);
    }

    pub fn stats(&self) -> SyncStats {
        self.stats.clone()
    }

    /// The `errcode` and body answering a pull with this JSON request body.
    pub fn pull(&mut self, request: &Value) -> (i64, String) {
        self.stats.calls += 1;
        let token = request["token"].as_str().unwrap_or_default();
        if !token.starts_with(KF_TOKEN_PREFIX) {
            self.stats.without_token += 1;
        }
        if request["open_kfid"] != KF_ACCOUNT {
            return self.refuse(95000, format!("pull for account {}", request["open_kfid"]));
        }
        let from = match request["cursor"].as_str().unwrap_or_default() {
            "" => 0,
            cursor => match cursor
                .strip_prefix(CURSOR_PREFIX)
                .and_then(|count| count.parse::<usize>().ok())
                .filter(|&count| count <= self.items.len())
            {
                Some(count) => count,
                None => return self.refuse(95016, format!("unknown cursor {cursor:?}")),
            },
        };
        let limit = request["limit"]
            .as_u64()
            .map_or(PAGE_ITEMS, |limit| (limit as usize).clamp(1, PAGE_ITEMS));
        let to = (from + limit).min(self.items.len());
        for handed in &mut self.handed[from..to] {
            if *handed > 0 {
                self.stats.again += 1;
            }
            *handed += 1;
        }
        self.stats.items += (to - from) as u64;
        if to > from {
            self.stats.pages += 1;
        }
        let cursor = format!("{CURSOR_PREFIX}{to}");
        let more = to < self.items.len();
        (0, sync_msg_response(&self.items[from..to], &cursor, more))
    }

    fn refuse(&mut self, errcode: i64, problem: String) -> (i64, String) {
        self.stats.refused += 1;
        self.stats.note(problem.clone());
        let body = serde_json::json!({"errcode": errcode, "errmsg": problem}).to_string();
        (errcode, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botgate_wecom::simulator::kf_customer_text;
    use serde_json::json;

    fn messages(count: usize) -> Vec<KfMessage> {
        (0..count)
            .map(|index| kf_customer_text(&format!("m{index}"), KF_ACCOUNT, "wm", 1, "问"))
            .collect()
    }

    fn pull(log: &mut SyncLog, cursor: Option<&str>) -> Value {
        let request = json!({"cursor": cursor, "token": format!("{KF_TOKEN_PREFIX}1"),
            "limit": 1000, "open_kfid": KF_ACCOUNT});
        let (errcode, body) = log.pull(&request);
        assert_eq!(errcode, 0, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn msgids(page: &Value) -> Vec<&str> {
        page["msg_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["msgid"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn pulls_page_through_the_queue_by_cursor_and_count_repeats() {
        let mut log = SyncLog::default();
        log.queue(messages(PAGE_ITEMS + 3));
        let first = pull(&mut log, None);
        assert_eq!(first["has_more"], 1);
        assert_eq!(msgids(&first).len(), PAGE_ITEMS);
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        let second = pull(&mut log, Some(&cursor));
        assert_eq!(second["has_more"], 0);
        assert_eq!(msgids(&second), ["m100", "m101", "m102"]);
        // Nothing new: an empty page with the same cursor.
        let last = second["next_cursor"].as_str().unwrap().to_owned();
        assert!(msgids(&pull(&mut log, Some(&last))).is_empty());
        log.queue(messages(1));
        assert_eq!(msgids(&pull(&mut log, Some(&last))), ["m0"]);
        // From the old cursor again: three handed out twice.
        pull(&mut log, Some(&cursor));
        let stats = log.stats();
        assert_eq!((stats.calls, stats.pages), (5, 4));
        assert_eq!((stats.items, stats.again), (PAGE_ITEMS as u64 + 8, 4));
        assert_eq!((stats.without_token, stats.refused), (0, 0));
    }

    #[test]
    fn unknown_cursors_and_accounts_are_refused() {
        let mut log = SyncLog::default();
        log.queue(messages(2));
        let (errcode, _) = log.pull(&json!({"cursor": "cursor-9", "open_kfid": KF_ACCOUNT}));
        assert_eq!(errcode, 95016);
        let (errcode, _) = log.pull(&json!({"open_kfid": "wk-other"}));
        assert_eq!(errcode, 95000);
        let stats = log.stats();
        assert_eq!((stats.refused, stats.without_token), (2, 2));
    }
}
