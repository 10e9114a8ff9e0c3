//! The chat page and the embeddable widget, compiled into the binary: no files to deploy, and
//! a page always matches the server that serves it.

/// A static file served under `/web/{bot}/`.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const ASSETS: [Asset; 3] = [
    Asset {
        name: "chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/chat.js"),
    },
    Asset {
        name: "chat.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/chat.css"),
    },
    Asset {
        name: "widget.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/widget.js"),
    },
];

const PAGE: &str = include_str!("../assets/chat.html");

/// One bot's chat page.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    pub title: &'a str,
    pub bot: &'a str,
    pub welcome: &'a str,
    pub max_chars: usize,
    pub feedback: bool,
}

impl Page<'_> {
    /// The page with this bot's settings filled in, every value HTML-escaped (they land in
    /// text and in quoted attributes).
    pub fn render(&self) -> String {
        PAGE.replace("{{TITLE}}", &escape(self.title))
            .replace("{{BOT}}", &escape(self.bot))
            .replace("{{WELCOME}}", &escape(self.welcome))
            .replace("{{MAX_CHARS}}", &self.max_chars.to_string())
            .replace("{{FEEDBACK}}", if self.feedback { "true" } else { "false" })
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for char in text.chars() {
        match char {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '{' => out.push_str("&#123;"),
            _ => out.push(char),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(title: &str, welcome: &str) -> String {
        Page {
            title,
            bot: "shop",
            welcome,
            max_chars: 500,
            feedback: true,
        }
        .render()
    }

    #[test]
    fn settings_are_filled_in_and_no_placeholder_is_left() {
        let html = page("Shop assistant", "您好");

        assert!(html.contains("Shop assistant"));
        assert!(html.contains("您好"));
        assert!(html.contains("/web/shop/chat.js"));
        assert!(html.contains("500"));
        assert!(!html.contains("{{"), "{html}");
    }

    #[test]
    fn markup_in_a_title_or_welcome_stays_text() {
        let html = page("<script>alert(1)</script>", "\" onload=\"alert(2)");

        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("\" onload=\"alert(2)"));
    }

    #[test]
    fn a_title_cannot_smuggle_a_placeholder() {
        let html = page("{{WELCOME}}", "secret-welcome");

        assert_eq!(
            html.matches("secret-welcome").count(),
            PAGE.matches("{{WELCOME}}").count()
        );
    }

    #[test]
    fn every_asset_has_content() {
        for asset in ASSETS {
            assert!(asset.body.len() > 100, "{} is empty", asset.name);
        }
        assert!(PAGE.contains("{{BOT}}"));
    }
}
