//! Server-sent event framing for the answer stream. Each event's data is one line of JSON
//! (serde escapes newlines), so no text can end an event early or forge another.

use serde::Serialize;

/// `event: {name}` with `data` as one JSON line, and the blank line that ends it.
pub fn event(name: &str, data: &impl Serialize) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    format!("event: {name}\ndata: {json}\n\n")
}

/// A comment line: keeps idle proxies from closing the stream while an answer is awaited.
pub fn comment(text: &str) -> String {
    format!(": {}\n\n", text.replace(['\r', '\n'], " "))
}

/// The last event of an answer: its whole final text (which replaces what was streamed, since
/// sources may be added or a fallback said instead), and whether it may be rated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Done {
    pub id: String,
    pub text: String,
    /// What kind of reply it is (`answer`, `rule`, `command`, `farewell`, `fallback`, …).
    pub kind: String,
    pub feedback: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_with_newlines_and_an_event_line_stays_one_data_line() {
        let framed = event(
            "delta",
            &serde_json::json!({"text": "line one\n\nevent: done\r\ndata: {}"}),
        );

        assert!(framed.starts_with("event: delta\ndata: {"));
        assert!(framed.ends_with("\n\n"));
        assert_eq!(framed.matches('\n').count(), 3, "{framed:?}");
        let data = framed
            .lines()
            .nth(1)
            .unwrap()
            .strip_prefix("data: ")
            .unwrap();
        let back: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(back["text"], "line one\n\nevent: done\r\ndata: {}");
    }

    #[test]
    fn a_comment_cannot_span_lines() {
        assert_eq!(comment("keep\nalive"), ": keep alive\n\n");
    }
}
