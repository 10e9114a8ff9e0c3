//! Checks that need more than types: references between tables, key formats, ranges.

use std::net::SocketAddr;

use secrecy::ExposeSecret;

use super::{ConfigError, LlmSettings, ReplyMode, Settings};

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn http_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(field, message)
}

pub(super) fn validate(settings: &Settings) -> Result<(), ConfigError> {
    if settings.server.listen.parse::<SocketAddr>().is_err() {
        return Err(invalid(
            "server.listen",
            "expected an address like 0.0.0.0:8080",
        ));
    }
    if settings.server.max_body_bytes < 1024 {
        return Err(invalid("server.max_body_bytes", "must be at least 1024"));
    }

    let store = &settings.store;
    if let Some(url) = &store.redis_url {
        let url = url.expose_secret();
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(invalid(
                "store.redis_url",
                "expected redis://host:port/db (or rediss://, unix://)",
            ));
        }
    }
    if store.key_prefix.is_empty() || store.key_prefix.contains(char::is_whitespace) {
        return Err(invalid(
            "store.key_prefix",
            "must be non-empty and without spaces",
        ));
    }
    if store.session_ttl_secs == 0 {
        return Err(invalid("store.session_ttl_secs", "must be at least 1"));
    }
    if !(1..=500).contains(&store.max_turns) {
        return Err(invalid("store.max_turns", "must be between 1 and 500"));
    }

    for (name, llm) in &settings.llm {
        let field = |leaf: &str| format!("llm.{name}.{leaf}");
        if !valid_name(name) {
            return Err(invalid(
                format!("llm.{name}"),
                "names use lower-case letters, digits, '_' and '-'",
            ));
        }
        match llm {
            LlmSettings::Bailian(bailian) => {
                if bailian.app_id.trim().is_empty() {
                    return Err(invalid(field("app_id"), "must not be empty"));
                }
                if bailian.api_key.expose_secret().trim().is_empty() {
                    return Err(invalid(field("api_key"), "must not be empty"));
                }
                if !http_url(&bailian.base_url) {
                    return Err(invalid(
                        field("base_url"),
                        "expected an http:// or https:// URL",
                    ));
                }
                if bailian.limits.timeout_secs == 0 {
                    return Err(invalid(field("timeout_secs"), "must be at least 1"));
                }
            }
            LlmSettings::Openai(openai) => {
                if !http_url(&openai.base_url) {
                    return Err(invalid(
                        field("base_url"),
                        "expected an http:// or https:// URL",
                    ));
                }
                if openai.model.trim().is_empty() {
                    return Err(invalid(field("model"), "must not be empty"));
                }
                if openai.limits.timeout_secs == 0 {
                    return Err(invalid(field("timeout_secs"), "must be at least 1"));
                }
            }
            LlmSettings::Rules(rules) => {
                for (index, rule) in rules.rules.iter().enumerate() {
                    let field = format!("llm.{name}.rules[{index}]");
                    if rule.keywords.iter().all(|k| k.trim().is_empty()) && rule.regex.is_none() {
                        return Err(invalid(field, "needs `keywords` or `regex`"));
                    }
                    if let Some(pattern) = &rule.regex {
                        if let Err(error) = regex::Regex::new(pattern) {
                            return Err(invalid(format!("{field}.regex"), error.to_string()));
                        }
                    }
                    if rule.answer.trim().is_empty() {
                        return Err(invalid(format!("{field}.answer"), "must not be empty"));
                    }
                }
            }
        }
    }

    let delivery = &settings.delivery;
    if delivery.workers == 0 {
        return Err(invalid("delivery.workers", "must be at least 1"));
    }
    if delivery.visibility_timeout_secs < 2 {
        return Err(invalid(
            "delivery.visibility_timeout_secs",
            "must be at least 2",
        ));
    }
    if delivery.send_attempts == 0 || delivery.max_deliveries == 0 {
        return Err(invalid(
            "delivery",
            "send_attempts and max_deliveries must be at least 1",
        ));
    }

    if settings.bots.is_empty() {
        return Err(invalid("bots", "configure at least one [bots.NAME]"));
    }
    for (name, bot) in &settings.bots {
        let field = |leaf: &str| format!("bots.{name}.{leaf}");
        if !valid_name(name) {
            return Err(invalid(
                format!("bots.{name}"),
                "names use lower-case letters, digits, '_' and '-'",
            ));
        }
        match &bot.llm {
            Some(llm) if !settings.llm.contains_key(llm) => {
                return Err(invalid(
                    field("llm"),
                    format!("names provider `{llm}`, but there is no [llm.{llm}]"),
                ));
            }
            None if settings.llm.len() > 1 => {
                return Err(invalid(
                    field("llm"),
                    "required when more than one [llm.NAME] is configured",
                ));
            }
            _ => {}
        }
        if let Some(rules) = &bot.rules {
            match settings.llm.get(rules) {
                None => {
                    return Err(invalid(
                        field("rules"),
                        format!("names provider `{rules}`, but there is no [llm.{rules}]"),
                    ))
                }
                Some(llm) if !matches!(llm, LlmSettings::Rules(_)) => {
                    return Err(invalid(
                        field("rules"),
                        format!(
                            "[llm.{rules}] is of kind \"{}\", expected \"rules\"",
                            llm.kind()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        for (text, leaf) in [
            (&bot.farewell, "farewell"),
            (&bot.welcome, "welcome"),
            (&bot.fallback, "fallback"),
            (&bot.refusal, "refusal"),
        ] {
            if text.trim().is_empty() {
                return Err(invalid(field(leaf), "must not be empty"));
            }
        }
        if let Some(webhook) = &bot.webhook {
            if webhook.secret.expose_secret().len() < 16 {
                return Err(invalid(
                    format!("bots.{name}.webhook.secret"),
                    "must be at least 16 characters",
                ));
            }
            if !http_url(&webhook.deliver_url) {
                return Err(invalid(
                    format!("bots.{name}.webhook.deliver_url"),
                    "expected an http:// or https:// URL",
                ));
            }
            if webhook.max_part_bytes < 64 {
                return Err(invalid(
                    format!("bots.{name}.webhook.max_part_bytes"),
                    "must be at least 64",
                ));
            }
        }
        if let Some(rate) = &bot.rate_limit {
            if rate.messages == 0 || rate.per_secs == 0 {
                return Err(invalid(
                    format!("bots.{name}.rate_limit"),
                    "messages and per_secs must be at least 1",
                ));
            }
        }
        if bot.max_concurrent_llm_calls == Some(0) {
            return Err(invalid(
                format!("bots.{name}.max_concurrent_llm_calls"),
                "must be at least 1",
            ));
        }
        if let Some(wechat) = &bot.wechat {
            let field = |leaf: &str| format!("bots.{name}.wechat.{leaf}");
            if wechat.app_id.trim().is_empty() {
                return Err(invalid(field("app_id"), "must not be empty"));
            }
            let token = wechat.token.expose_secret();
            if token.is_empty()
                || token.len() > 32
                || !token.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(invalid(
                    field("token"),
                    "expected 1 to 32 ASCII letters and digits, as set in the WeChat console",
                ));
            }
            if let Some(key) = &wechat.encoding_aes_key {
                if let Err(error) = botgate_wxcrypt::EncodingAesKey::parse(key.expose_secret()) {
                    return Err(invalid(field("encoding_aes_key"), error.to_string()));
                }
            }
            if wechat.reply_mode == ReplyMode::Active && wechat.app_secret.is_none() {
                return Err(invalid(
                    field("app_secret"),
                    "required when reply_mode = \"active\"",
                ));
            }
            if !http_url(&wechat.api_base) {
                return Err(invalid(
                    field("api_base"),
                    "expected an http:// or https:// URL",
                ));
            }
            if wechat.placeholder.trim().is_empty() {
                return Err(invalid(field("placeholder"), "must not be empty"));
            }
        }
    }
    Ok(())
}
