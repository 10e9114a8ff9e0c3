//! Where session-webhook replies may go: DingTalk's exact hosts over https (the adapter's strict
//! check), plus, for a local test double, configured full origins matched exactly.

use botgate_dingtalk::outbound::webhook_host_allowed;

/// `session_webhook_hosts`, split once at build into bare hosts and origins.
#[derive(Debug, Clone, Default)]
pub struct WebhookHosts {
    /// `oapi.dingtalk.com`: `https://` and port 443 only.
    hosts: Vec<String>,
    /// `http://127.0.0.1:8080`: that scheme, host and port exactly, lower-cased.
    origins: Vec<String>,
}

impl WebhookHosts {
    pub fn new(entries: &[String]) -> Self {
        let (origins, hosts) = entries
            .iter()
            .map(|entry| entry.trim_end_matches('/').to_ascii_lowercase())
            .partition(|entry| entry.contains("://"));
        WebhookHosts { hosts, origins }
    }

    /// Whether replies may be POSTed to `url`.
    pub fn allow(&self, url: &str) -> bool {
        let hosts: Vec<&str> = self.hosts.iter().map(String::as_str).collect();
        webhook_host_allowed(url, &hosts) || self.origin_allowed(url)
    }

    /// The same refusals as the strict check (no userinfo, escapes, spaces, backslashes), then
    /// the origin must be followed directly by the path: `http://127.0.0.1:8080@evil/` and
    /// `http://127.0.0.1:80800/` are not `http://127.0.0.1:8080`.
    fn origin_allowed(&self, url: &str) -> bool {
        if self.origins.is_empty()
            || !url.bytes().all(|byte| byte.is_ascii_graphic())
            || url.contains(['\\', '@', '%'])
        {
            return false;
        }
        self.origins.iter().any(|origin| {
            url.len() > origin.len()
                && url.is_char_boundary(origin.len())
                && url[..origin.len()].eq_ignore_ascii_case(origin)
                && url[origin.len()..].starts_with('/')
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> WebhookHosts {
        WebhookHosts::new(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn bare_hosts_stay_strict() {
        let allowed = hosts(&["oapi.dingtalk.com"]);

        assert!(allowed.allow("https://oapi.dingtalk.com/robot/sendBySession?session=1"));
        assert!(!allowed.allow("http://oapi.dingtalk.com/robot/sendBySession"));
        assert!(!allowed.allow("https://oapi.dingtalk.com:8443/robot"));
        assert!(!allowed.allow("http://127.0.0.1:8080/robot"));
    }

    #[test]
    fn an_origin_matches_only_its_scheme_host_and_port() {
        let allowed = hosts(&["oapi.dingtalk.com", "http://127.0.0.1:8080"]);

        assert!(allowed.allow("http://127.0.0.1:8080/robot/sendBySession?session=1"));
        assert!(allowed.allow("https://oapi.dingtalk.com/robot"));
        for url in [
            "https://127.0.0.1:8080/robot",
            "http://127.0.0.1:8081/robot",
            "http://127.0.0.1:80800/robot",
            "http://127.0.0.1:8080@evil.com/robot",
            "http://127.0.0.1:8080.evil.com/robot",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080?x=/",
            "http://127.0.0.1:8080/%2e%2e/",
            "http://127.0.0.1:8080\\@evil/",
            "http://127.0.0.1:8080/ space",
        ] {
            assert!(!allowed.allow(url), "{url}");
        }
    }
}
