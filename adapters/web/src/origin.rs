//! Which web pages may use a bot's chat: the API's CORS answer and the chat page's
//! `frame-ancestors`, both from the bot's `allowed_origins`.

/// A bot's `allowed_origins`: exact origins (`https://www.example.com`), or `*` for any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    any: bool,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        OriginPolicy {
            any: allowed.iter().any(|origin| origin == "*"),
            allowed: allowed
                .iter()
                .filter(|origin| *origin != "*")
                .map(|origin| normalize(origin))
                .collect(),
        }
    }

    /// Whether a request with this `Origin` may use the API. No `Origin` is not a browser
    /// making a cross-origin call (a server, curl, or a same-origin GET): allowed, as it
    /// carries no cookies to abuse. The page's own origin is `host` (the request's `Host`),
    /// compared without the scheme, which a TLS-terminating proxy hides from us.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = normalize(origin);
        if self.allowed.contains(&origin) {
            return true;
        }
        match (origin.split_once("://"), host) {
            (Some((_, authority)), Some(host)) => authority.eq_ignore_ascii_case(host),
            _ => false,
        }
    }

    /// The chat page's `frame-ancestors` sources: itself and the allowed origins.
    pub fn frame_ancestors(&self) -> String {
        if self.any {
            return "*".to_owned();
        }
        let mut sources = vec!["'self'".to_owned()];
        sources.extend(self.allowed.iter().cloned());
        sources.join(" ")
    }
}

/// Origins compare case-insensitively and never end in a slash.
fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&origins.iter().map(|o| o.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn only_listed_origins_and_the_page_itself_are_allowed() {
        let policy = policy(&["https://www.example.com/"]);

        assert!(policy.allows(Some("https://www.example.com"), Some("bot.example.net")));
        assert!(policy.allows(Some("HTTPS://WWW.EXAMPLE.COM"), None));
        assert!(policy.allows(Some("https://bot.example.net"), Some("bot.example.net")));
        assert!(policy.allows(None, Some("bot.example.net")));
        assert!(!policy.allows(Some("https://evil.example"), Some("bot.example.net")));
        assert!(!policy.allows(Some("https://www.example.com.evil.example"), None));
        assert!(!policy.allows(Some("null"), Some("bot.example.net")));
    }

    #[test]
    fn an_empty_list_means_the_same_origin_only() {
        let policy = policy(&[]);

        assert!(policy.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(!policy.allows(Some("http://127.0.0.1:9999"), Some("127.0.0.1:8080")));
        assert_eq!(policy.frame_ancestors(), "'self'");
    }

    #[test]
    fn frame_ancestors_list_the_allowed_origins() {
        assert_eq!(
            policy(&["https://a.example", "https://b.example"]).frame_ancestors(),
            "'self' https://a.example https://b.example"
        );
        assert_eq!(policy(&["*"]).frame_ancestors(), "*");
        assert!(policy(&["*"]).allows(Some("https://anyone.example"), None));
    }
}
