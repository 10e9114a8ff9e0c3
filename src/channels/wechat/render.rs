//! An answer as WeChat shows it: plain text, in parts that fit one message each.

use botgate_text::PartsPolicy;
use botgate_wechat::MAX_TEXT_REPLY_BYTES;

/// Appended to every part but the last, so the user knows to ask for more.
pub const CONTINUE_HINT: &str = "\n\n（未完待续，回复任意文字继续）";

/// Passive replies: 2048 bytes each (hint included), as many as the user pulls.
pub const PASSIVE_PARTS: PartsPolicy = PartsPolicy {
    max_bytes: MAX_TEXT_REPLY_BYTES,
    max_parts: None,
    continue_hint: Some(CONTINUE_HINT),
    truncated_hint: "",
    plain_text: true,
};

/// The customer-service API takes ~2048 bytes per text; stay clear of the edge.
pub const ACTIVE_PART_BYTES: usize = 2000;
/// WeChat allows 5 customer-service messages per user message (45047 beyond).
pub const ACTIVE_MAX_PARTS: usize = 5;
pub const TRUNCATED_HINT: &str = "……（回答较长，其余部分已省略）";

/// Customer-service messages: at most five of at most 2000 bytes, the last saying the rest was
/// left out when the answer is longer.
pub const ACTIVE_PARTS: PartsPolicy = PartsPolicy {
    max_bytes: ACTIVE_PART_BYTES,
    max_parts: Some(ACTIVE_MAX_PARTS),
    continue_hint: None,
    truncated_hint: TRUNCATED_HINT,
    plain_text: true,
};

/// Plain text in passive parts of at most `MAX_TEXT_REPLY_BYTES` UTF-8 bytes, hint included.
pub fn answer_parts(answer: &str) -> Vec<String> {
    PASSIVE_PARTS.parts(answer)
}

/// Plain text in at most five parts of at most 2000 bytes, cut on paragraph and sentence
/// boundaries; an answer longer than that ends with a note that the rest was left out.
pub fn active_parts(answer: &str) -> Vec<String> {
    ACTIVE_PARTS.parts(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_answers_are_at_most_five_parts_of_2000_bytes() {
        let long = "很长的句子。".repeat(2000);
        let parts = active_parts(&long);
        assert_eq!(parts.len(), ACTIVE_MAX_PARTS);
        assert!(parts.iter().all(|part| part.len() <= ACTIVE_PART_BYTES));
        assert!(parts[ACTIVE_MAX_PARTS - 1].ends_with(TRUNCATED_HINT));
        assert_eq!(active_parts("短回答"), vec!["短回答".to_owned()]);
    }

    #[test]
    fn long_answers_are_parts_with_hints_within_the_byte_limit() {
        let answer = "第一段。".repeat(300) + "\n\n" + &"第二段。".repeat(300);
        let parts = answer_parts(&answer);
        assert!(parts.len() >= 2);
        for part in &parts[..parts.len() - 1] {
            assert!(part.ends_with(CONTINUE_HINT));
        }
        assert!(!parts[parts.len() - 1].ends_with(CONTINUE_HINT));
        assert!(parts.iter().all(|part| part.len() <= MAX_TEXT_REPLY_BYTES));
    }

    #[test]
    fn markdown_is_flattened() {
        assert_eq!(
            answer_parts("**营业时间**：9:00"),
            vec!["营业时间：9:00".to_owned()]
        );
    }
}
