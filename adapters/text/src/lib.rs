//! An answer as a chat platform shows it: markdown flattened to plain text where the platform
//! renders none, cut into parts that each fit one message, with a hint when more follows.
//!
//! Pure and shared by every channel; each platform states its limits once as a [`PartsPolicy`].

mod markdown;
mod split;

pub use markdown::markdown_to_text;
pub use split::{split_utf8, MIN_PART_BYTES};

/// How one platform takes an answer: bytes per message, how many messages, what marks a part
/// that more follows, and whether markdown is flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartsPolicy {
    /// UTF-8 bytes per part, hints included.
    pub max_bytes: usize,
    /// At most this many parts; the last ends with `truncated_hint` when the answer was longer.
    pub max_parts: Option<usize>,
    /// Appended to every part but the last, so the user knows to ask for more.
    pub continue_hint: Option<&'static str>,
    /// Appended to the last part when `max_parts` cut the answer short.
    pub truncated_hint: &'static str,
    /// Flatten markdown to plain text (the platform renders none).
    pub plain_text: bool,
}

impl PartsPolicy {
    /// The answer as this platform's messages, in order; never empty.
    pub fn parts(&self, answer: &str) -> Vec<String> {
        let text = match self.plain_text {
            true => markdown_to_text(answer),
            false => answer.to_owned(),
        };
        let hint = self.continue_hint.unwrap_or("");
        let budget = self
            .max_bytes
            .saturating_sub(hint.len())
            .max(MIN_PART_BYTES);
        let mut parts = split_utf8(&text, budget);
        if parts.is_empty() {
            parts.push(text);
        }
        if let Some(max) = self.max_parts.filter(|max| parts.len() > *max && *max > 0) {
            parts.truncate(max);
            let last = &mut parts[max - 1];
            let room = budget.saturating_sub(self.truncated_hint.len());
            if last.len() > room {
                let mut cut = room;
                while !last.is_char_boundary(cut) {
                    cut -= 1;
                }
                last.truncate(cut);
            }
            last.push_str(self.truncated_hint);
        }
        let last = parts.len() - 1;
        for part in &mut parts[..last] {
            part.push_str(hint);
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGED: PartsPolicy = PartsPolicy {
        max_bytes: 64,
        max_parts: None,
        continue_hint: Some("（续）"),
        truncated_hint: "",
        plain_text: true,
    };

    #[test]
    fn every_part_but_the_last_carries_the_hint_within_the_limit() {
        let parts = PAGED.parts(&"一句话。".repeat(30));
        assert!(parts.len() > 2);
        assert!(parts.iter().all(|part| part.len() <= 64));
        assert!(parts[..parts.len() - 1]
            .iter()
            .all(|part| part.ends_with("（续）")));
        assert!(!parts[parts.len() - 1].ends_with("（续）"));
    }

    #[test]
    fn at_most_max_parts_the_last_saying_the_rest_was_left_out() {
        let policy = PartsPolicy {
            max_bytes: 30,
            max_parts: Some(2),
            continue_hint: None,
            truncated_hint: "……",
            plain_text: false,
        };
        let parts = policy.parts(&"abcdefghij ".repeat(20));
        assert_eq!(parts.len(), 2);
        assert!(parts[1].ends_with("……") && parts[1].len() <= 30);
    }

    #[test]
    fn markdown_is_kept_or_flattened_as_the_platform_wants() {
        let raw = PartsPolicy {
            plain_text: false,
            ..PAGED
        };
        assert_eq!(PAGED.parts("**粗体**"), ["粗体"]);
        assert_eq!(raw.parts("**粗体**"), ["**粗体**"]);
    }
}
