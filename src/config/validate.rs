//! Checks that need more than types: references between tables, key formats, ranges.

use std::net::SocketAddr;

use secrecy::ExposeSecret;

use super::{ConfigError, LlmSettings, ReplyMode, Settings, WechatSettings};

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub(super) fn http_url(value: &str) -> bool {
    (value.starts_with("http://") || value.starts_with("https://"))
        && reqwest::Url::parse(value).is_ok()
}

/// The longest an LLM call's deadline or silence may be set to. Far beyond any real answer;
/// the bound keeps `now + limit` from overflowing, which panics.
const MAX_CALL_SECS: u64 = 86_400;

/// The longest any other duration setting may be: far past any use, and short enough that
/// adding it to a clock reading cannot overflow (`Instant + Duration` panics when it does).
const MAX_SECS: u64 = 10 * 365 * 86_400;

fn at_most_ten_years(field: impl Into<String>, value: u64) -> Result<(), ConfigError> {
    if value > MAX_SECS {
        return Err(invalid(
            field,
            format!("must be at most {MAX_SECS} (ten years)"),
        ));
    }
    Ok(())
}

fn call_limits(
    limits: &super::CallLimits,
    field: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    for (leaf, value) in [
        ("timeout_secs", limits.timeout_secs),
        ("idle_timeout_secs", limits.idle_timeout_secs),
    ] {
        if !(1..=MAX_CALL_SECS).contains(&value) {
            return Err(invalid(
                field(leaf),
                format!("must be between 1 and {MAX_CALL_SECS} (a day)"),
            ));
        }
    }
    Ok(())
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(field, message)
}

/// A platform retries one message for about 15 s (WeChat) and webhook callers for longer; a
/// message id forgotten sooner than this would be answered twice.
const MIN_DEDUP_TTL_SECS: u64 = 60;

/// Shorter keys make the hashes of known ids guessable by trying keys.
const MIN_LOG_ID_KEY_CHARS: usize = 16;

/// Beyond an hour the window no longer bounds anything an operator would call a replay.
const MAX_TIMESTAMP_WINDOW_SECS: u64 = 3600;

/// The range of `deadline_ms`: WeChat's is 5000; tests shorten it, down to where a wait window
/// of 70%..(deadline − 100 ms) still exists with room to spare.
const DEADLINE_MS: std::ops::RangeInclusive<u64> = 500..=5000;

pub(super) fn validate(settings: &Settings) -> Result<(), ConfigError> {
    if settings.server.listen.parse::<SocketAddr>().is_err() {
        return Err(invalid(
            "server.listen",
            "expected an address like 0.0.0.0:8080",
        ));
    }
    at_most_ten_years(
        "server.shutdown_timeout_secs",
        settings.server.shutdown_timeout_secs,
    )?;
    if settings.server.max_body_bytes < 1024 {
        return Err(invalid("server.max_body_bytes", "must be at least 1024"));
    }
    if let Some(key) = &settings.server.log_id_key {
        if key.expose_secret().chars().count() < MIN_LOG_ID_KEY_CHARS {
            return Err(invalid(
                "server.log_id_key",
                format!("must be at least {MIN_LOG_ID_KEY_CHARS} characters: with a short key, anyone holding the logs can find which key maps a known user id to its hash"),
            ));
        }
    }

    let store = &settings.store;
    if let Some(url) = &store.redis_url {
        let url = url.expose_secret();
        let seeds: Vec<&str> = if store.cluster {
            url.split(',').map(str::trim).collect()
        } else {
            vec![url]
        };
        let valid = |seed: &&str| {
            seed.starts_with("redis://")
                || seed.starts_with("rediss://")
                || (!store.cluster && seed.starts_with("unix://"))
        };
        if !seeds.iter().all(valid) {
            return Err(invalid(
                "store.redis_url",
                if store.cluster {
                    "expected redis://host:port of one or more cluster nodes, separated by commas (or rediss://)"
                } else {
                    "expected redis://host:port/db (or rediss://, unix://)"
                },
            ));
        }
    }
    if store.cluster {
        if store.redis_url.is_none() {
            return Err(invalid(
                "store.cluster",
                "needs store.redis_url: one or more of the cluster's nodes",
            ));
        }
        // Every key starts with the prefix, so a prefix that is a hash tag puts all of them
        // in one slot, and each script's keys on one node.
        let tagged = store.key_prefix.starts_with('{')
            && store.key_prefix.find('}').is_some_and(|close| close > 1);
        if !tagged {
            return Err(invalid(
                "store.key_prefix",
                "on a Redis Cluster it must start with a hash tag such as \"{botgate}\": botgate's scripts touch several keys at once, and Redis Cluster runs a script only when all its keys are in one slot",
            ));
        }
    }
    if !(1..=crate::keyspace::MAX_SHARDS).contains(&store.shards) {
        return Err(invalid(
            "store.shards",
            format!("must be between 1 and {}", crate::keyspace::MAX_SHARDS),
        ));
    }
    if store.shards > 1 {
        if !store.cluster {
            return Err(invalid(
                "store.shards",
                "more than one needs store.cluster = true: shards spread load over a cluster's nodes, and a single Redis gains nothing from them",
            ));
        }
        // Every replica keeps a job fetcher per shard waiting on a worker slot.
        if settings.delivery.workers < 2 * store.shards {
            return Err(invalid(
                "delivery.workers",
                format!("must be at least twice store.shards ({}): each shard's job fetcher holds a worker slot while it waits", store.shards),
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
    at_most_ten_years("store.session_ttl_secs", store.session_ttl_secs)?;
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
                call_limits(&bailian.limits, &field)?;
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
                call_limits(&openai.limits, &field)?;
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
            "must be at least 2: a job whose worker has been silent this long is handed to another worker, so a shorter timeout takes jobs away from workers that are still on them",
        ));
    }
    at_most_ten_years(
        "delivery.visibility_timeout_secs",
        delivery.visibility_timeout_secs,
    )?;
    at_most_ten_years("delivery.dedup_ttl_secs", delivery.dedup_ttl_secs)?;
    if delivery.dedup_ttl_secs < MIN_DEDUP_TTL_SECS {
        return Err(invalid(
            "delivery.dedup_ttl_secs",
            format!("must be at least {MIN_DEDUP_TTL_SECS} (the default is 86400): a platform retries a message for up to ~15 s (WeChat) or longer (webhook callers), and a retry that arrives after its message id is forgotten is answered a second time"),
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
            at_most_ten_years(format!("bots.{name}.rate_limit.per_secs"), rate.per_secs)?;
        }
        if bot.max_concurrent_llm_calls == Some(0) {
            return Err(invalid(
                format!("bots.{name}.max_concurrent_llm_calls"),
                "must be at least 1",
            ));
        }
        if let Some(web) = &bot.web {
            web.validate(name)?;
        }
        if let Some(wecom) = &bot.wecom {
            wecom.validate(name)?;
        }
        if let Some(dingtalk) = &bot.dingtalk {
            dingtalk.validate(name)?;
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
            if wechat.require_encryption == Some(true) && wechat.encoding_aes_key.is_none() {
                return Err(invalid(
                    field("require_encryption"),
                    "needs encoding_aes_key: without a key no request can be encrypted, so every one would be refused",
                ));
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
            validate_wechat_timing(wechat, &field)?;
        }
    }
    Ok(())
}

/// The clock-related WeChat settings, whose wrong values fail silently rather than loudly.
fn validate_wechat_timing(
    wechat: &WechatSettings,
    field: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let min_window = botgate_wechat::MIN_TIMESTAMP_WINDOW.as_secs();
    if wechat.timestamp_window_secs < min_window {
        return Err(invalid(
            field("timestamp_window_secs"),
            format!("must be at least {min_window} (the default is 300): WeChat retries a message for about 15 s, possibly with its first timestamp, and a narrower window refuses those retries and any server whose clock is a few seconds off"),
        ));
    }
    if wechat.timestamp_window_secs > MAX_TIMESTAMP_WINDOW_SECS {
        return Err(invalid(
            field("timestamp_window_secs"),
            format!("must be at most {MAX_TIMESTAMP_WINDOW_SECS} (the default is 300): the window is how long a leaked callback URL can be replayed; fix the server's clock (NTP) rather than widen it"),
        ));
    }
    if !DEADLINE_MS.contains(&wechat.deadline_ms) {
        return Err(invalid(
            field("deadline_ms"),
            format!(
                "must be between {} and {}: it is WeChat's own deadline (5000); leave it at 5000, only tests scale it down",
                DEADLINE_MS.start(),
                DEADLINE_MS.end()
            ),
        ));
    }
    // 70% rounded up, so that "at least 70%" holds for every deadline.
    let earliest = (wechat.deadline_ms * 7).div_ceil(10);
    let latest = wechat.deadline_ms - 100;
    if !(earliest..=latest).contains(&wechat.passive_wait_ms) {
        return Err(invalid(
            field("passive_wait_ms"),
            format!(
                "must be between {earliest} and {latest} ms (from 70% of deadline_ms = {} to 100 ms before it): ending WeChat's request much earlier answers it empty, which WeChat takes as final instead of retrying, so an answer still being written never reaches the user; waiting until WeChat's deadline binds answers to requests WeChat has already abandoned",
                wechat.deadline_ms
            ),
        ));
    }
    Ok(())
}
