//! Splitting a long answer into messages that each fit a platform's byte limit, at the most natural break.

/// The smallest limit honoured: every `char` must fit in one part, and one takes up to 4 bytes.
pub const MIN_PART_BYTES: usize = 4;

/// Characters after which a sentence ends (CJK full-width and ASCII).
const SENTENCE_ENDS: &[char] = &['。', '！', '？', '.', '!', '?'];

/// Splits `text` into parts of at most `max_bytes` UTF-8 bytes (at least [`MIN_PART_BYTES`]).
///
/// Each cut is made at the last paragraph break (`"\n\n"`) in the allowed window, else the last
/// line break, else just after the last sentence end (`。！？.!?`), else at the last space, else at
/// the last char boundary. A break in the second half of the window is preferred over a better
/// kind of break in the first half, so that parts stay reasonably full (WeChat allows only five
/// messages per question). Parts carry no leading or trailing newlines, no trailing whitespace,
/// and are never empty; only whitespace is lost at the cuts, so joining the parts with `"\n"`
/// keeps every other character in order.
pub fn split_utf8(text: &str, max_bytes: usize) -> Vec<String> {
    let max_bytes = max_bytes.max(MIN_PART_BYTES);
    let mut parts = Vec::new();
    let mut rest = trim_newlines(text);
    while !rest.is_empty() {
        let (part, next) = if rest.len() <= max_bytes {
            (rest, "")
        } else {
            cut(rest, max_bytes)
        };
        let part = trim_newlines(part).trim_end();
        if !part.is_empty() {
            parts.push(part.to_owned());
        }
        rest = trim_newlines(next);
    }
    parts
}

/// Returns the part before the best cut within `max_bytes`, and the text after it.
fn cut(rest: &str, max_bytes: usize) -> (&str, &str) {
    let window = &rest[..floor_char_boundary(rest, max_bytes)];
    for earliest in [window.len() / 2, 1] {
        let accept = |at: &usize| *at >= earliest;
        if let Some(at) = window.rfind("\n\n").filter(accept) {
            return (&rest[..at], &rest[at + 2..]);
        }
        if let Some(at) = window.rfind('\n').filter(accept) {
            return (&rest[..at], &rest[at + 1..]);
        }
        if let Some(end) = last_sentence_end(window).filter(accept) {
            return rest.split_at(end);
        }
        if let Some(at) = window.rfind(' ').filter(accept) {
            return (&rest[..at], &rest[at + 1..]);
        }
    }
    rest.split_at(window.len())
}

/// The byte offset just after the last sentence-ending character of `window`.
fn last_sentence_end(window: &str) -> Option<usize> {
    window
        .char_indices()
        .rev()
        .find(|(_, character)| SENTENCE_ENDS.contains(character))
        .map(|(at, character)| at + character.len_utf8())
}

/// The largest char boundary at or below `at` (`str::floor_char_boundary` is newer than our MSRV).
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn trim_newlines(text: &str) -> &str {
    text.trim_matches(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_utf8("\n你好\n", 2048), vec!["你好"]);
        assert!(split_utf8("\n\n", 2048).is_empty());
    }

    #[test]
    fn prefers_paragraphs_then_lines_then_sentences() {
        let text = "first paragraph.\n\nsecond line one\nsecond line two. And more";

        assert_eq!(
            split_utf8(text, 30),
            vec![
                "first paragraph.",
                "second line one",
                "second line two. And more"
            ]
        );
    }

    #[test]
    fn cuts_after_cjk_sentence_ends() {
        let text = "今天天气很好。我们去公园吧！好的";

        let parts = split_utf8(text, 27);

        assert_eq!(parts, vec!["今天天气很好。", "我们去公园吧！好的"]);
    }

    #[test]
    fn falls_back_to_char_boundaries() {
        let parts = split_utf8("中文中文中", 7);

        assert_eq!(parts, vec!["中文", "中文", "中"]);
    }

    #[test]
    fn tiny_limits_still_fit_every_char() {
        let parts = split_utf8("😀a", 1);

        assert_eq!(parts, vec!["😀", "a"]);
    }
}
