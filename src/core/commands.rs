//! Recognising commands (`/reset`, `/help`, …) and farewells in what the user typed.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Reset,
    Help,
}

const RESET_WORDS: &[&str] = &["/reset", "/new", "清除记忆", "新对话"];
const HELP_WORDS: &[&str] = &["/help", "帮助"];

pub const RESET_CONFIRMATION: &str = "好的，已清除之前的对话记忆，我们重新开始吧。";
pub const HELP_TEXT: &str = "可用命令：\n/reset 或 /new（清除记忆、新对话）：清除对话记忆，重新开始\n/help（帮助）：显示本说明\n说“再见”即可结束对话。";

/// Whole-message match (after trimming), so "/resetting the router" is a question, not a command.
pub fn command(text: &str) -> Option<Command> {
    let text = text.trim();
    let lower = text.to_lowercase();
    if RESET_WORDS.contains(&lower.as_str()) {
        return Some(Command::Reset);
    }
    if HELP_WORDS.contains(&lower.as_str()) {
        return Some(Command::Help);
    }
    None
}

/// Lower-cased, trimmed, with trailing punctuation and spaces removed: "谢谢，再见！" and
/// "Bye!" compare equal to "谢谢再见" and "bye".
pub fn normalize(text: &str) -> String {
    let lower = text.trim().to_lowercase();
    lower
        .chars()
        .filter(|c| !matches!(c, '，' | ',' | '、' | '~' | '～'))
        .collect::<String>()
        .trim_end_matches(|c: char| {
            c.is_whitespace()
                || matches!(c, '。' | '！' | '!' | '.' | '？' | '?' | '~' | '…' | '～')
        })
        .trim()
        .to_owned()
}

/// A farewell is the whole message being one of the phrases: containing one is not enough
/// ("再见面的时候" is not goodbye), which keeps false positives, and lost questions, rare.
///
/// `normalized` are the bot's phrases passed through [`normalize`] once, when the bot is built
/// ([`normalized_phrases`]), rather than on every message.
pub fn is_farewell(text: &str, normalized: &[String]) -> bool {
    let text = normalize(text);
    !text.is_empty() && normalized.contains(&text)
}

pub fn normalized_phrases(phrases: &[String]) -> Vec<String> {
    phrases.iter().map(|phrase| normalize(phrase)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_farewell_phrases;

    #[test]
    fn commands_are_whole_messages() {
        assert_eq!(command(" /reset "), Some(Command::Reset));
        assert_eq!(command("新对话"), Some(Command::Reset));
        assert_eq!(command("/HELP"), Some(Command::Help));
        assert_eq!(command("/reset my password please"), None);
    }

    #[test]
    fn farewells_ignore_case_and_punctuation() {
        let phrases = normalized_phrases(&default_farewell_phrases());
        for text in [
            "再见",
            "拜拜！",
            "谢谢，再见。",
            "Bye!",
            "That's all.",
            "好的我知道了",
            "没有了",
        ] {
            assert!(is_farewell(text, &phrases), "{text}");
        }
        for text in ["再见面的时候", "bye the way, how much?", "", "   "] {
            assert!(!is_farewell(text, &phrases), "{text}");
        }
    }
}
