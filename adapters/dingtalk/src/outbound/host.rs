//! Whether a session webhook URL points at DingTalk: the body that carries it is not covered by
//! HTTP mode's signature, so a forged one must not turn the gateway into a proxy.

/// The hosts DingTalk's session webhooks are served from (inbound.md §6.2, outbound.md §4.2).
pub const DEFAULT_WEBHOOK_HOSTS: &[&str] = &["oapi.dingtalk.com"];

/// `url` is `https://HOST[:443]/…` with `HOST` exactly one of `hosts` (ASCII case-insensitive).
///
/// Strict on purpose, refusing what URL parsers disagree on rather than parsing it like any of
/// them: userinfo (`https://oapi.dingtalk.com@evil.com/`), backslashes, percent-escapes,
/// whitespace and control characters, other ports, a trailing dot, and a missing path.
pub fn webhook_host_allowed(url: &str, hosts: &[&str]) -> bool {
    if !url.bytes().all(|byte| byte.is_ascii_graphic()) || url.contains('\\') {
        return false;
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    if !after.starts_with('/') {
        return false;
    }
    let host = match authority.split_once(':') {
        Some((host, "443")) => host,
        Some(_) => return false,
        None => authority,
    };
    let plain = host
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
    plain
        && hosts
            .iter()
            .any(|allowed| host.eq_ignore_ascii_case(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_host_over_https_passes() {
        let allowed = |url| webhook_host_allowed(url, DEFAULT_WEBHOOK_HOSTS);

        assert!(allowed(
            "https://oapi.dingtalk.com/robot/sendBySession?session=76da"
        ));
        assert!(allowed("https://OAPI.dingtalk.com:443/robot/sendBySession"));
        for url in [
            "http://oapi.dingtalk.com/robot/sendBySession",
            "https://oapi.dingtalk.com@evil.com/",
            "https://evil.com@oapi.dingtalk.com/",
            "https://oapi.dingtalk.com.evil.com/",
            "https://oapi.dingtalk.com./robot",
            "https://oapi.dingtalk.com:8443/robot",
            "https://oapi.dingtalk.com\\@evil.com/",
            "https://oapi%2edingtalk.com/robot",
            "https://oapi.dingtalk.com?session=1",
            "https://oapi.dingtalk.com",
            "https://oapi.ding talk.com/",
            "https://evil.com/https://oapi.dingtalk.com/",
            "HTTPS://oapi.dingtalk.com/",
            "",
        ] {
            assert!(!allowed(url), "{url}");
        }
    }
}
