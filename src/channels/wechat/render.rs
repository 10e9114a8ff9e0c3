//! An answer as WeChat shows it: plain text, in parts that fit one passive reply each.

use botgate_wechat::{markdown_to_text, split_utf8, MAX_TEXT_REPLY_BYTES};

/// Appended to every part but the last, so the user knows to ask for more.
pub const CONTINUE_HINT: &str = "\n\n（未完待续，回复任意文字继续）";

/// Markdown flattened to plain text and cut into parts of at most `MAX_TEXT_REPLY_BYTES`
/// UTF-8 bytes, hint included.
pub fn answer_parts(answer: &str) -> Vec<String> {
    let text = markdown_to_text(answer);
    let budget = MAX_TEXT_REPLY_BYTES - CONTINUE_HINT.len();
    let mut parts = split_utf8(&text, budget);
    if parts.is_empty() {
        parts.push(text);
    }
    let last = parts.len() - 1;
    for part in &mut parts[..last] {
        part.push_str(CONTINUE_HINT);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

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
