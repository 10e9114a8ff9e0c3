//! Validation at load: settings that would silently break a guarantee are refused, naming the
//! field, the safe range and why.

use super::{parse, ConfigError, Settings};

/// A valid configuration with a WeChat account (with a key); each test changes one field
/// through a `BOTGATE__` override, as an operator's environment would.
const BASE: &str = r#"
[bots.shop.wechat]
app_id = "wx2c2769f8efd9abc2"
token = "spamtest"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
"#;

fn load(overrides: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: Vec<(String, String)> = overrides
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    parse(BASE, &env)
}

/// The refusal's field and message; panics when the settings were accepted.
fn refused(overrides: &[(&str, &str)]) -> (String, String) {
    match load(overrides) {
        Err(ConfigError::Invalid { field, message }) => (field, message),
        Err(other) => panic!("{overrides:?}: expected a field error, got {other}"),
        Ok(_) => panic!("{overrides:?}: accepted"),
    }
}

const WAIT: &str = "BOTGATE__BOTS__SHOP__WECHAT__PASSIVE_WAIT_MS";
const DEADLINE: &str = "BOTGATE__BOTS__SHOP__WECHAT__DEADLINE_MS";
const WINDOW: &str = "BOTGATE__BOTS__SHOP__WECHAT__TIMESTAMP_WINDOW_SECS";
const REQUIRE: &str = "BOTGATE__BOTS__SHOP__WECHAT__REQUIRE_ENCRYPTION";

#[test]
fn the_defaults_are_valid_and_safe() {
    let settings = load(&[]).unwrap();

    let wechat = settings.bots["shop"].wechat.as_ref().unwrap();
    assert_eq!(wechat.deadline_ms, 5000);
    assert_eq!(wechat.passive_wait_ms, 4500);
    assert_eq!(wechat.timestamp_window_secs, 300);
    assert!(wechat.requires_encryption(), "a key is configured");
    assert_eq!(settings.delivery.dedup_ttl_secs, 86_400);
    assert!(settings.server.log_id_key.is_none());
}

#[test]
fn encryption_is_required_by_default_exactly_when_a_key_is_configured() {
    let without_key = BASE.replace("encoding_aes_key", "# encoding_aes_key");
    let requires = |settings: Settings| {
        settings.bots["shop"]
            .wechat
            .as_ref()
            .unwrap()
            .requires_encryption()
    };

    let keyed = requires(load(&[]).unwrap());
    let plaintext_only = requires(parse(&without_key, &[]).unwrap());
    let turned_off = requires(load(&[(REQUIRE, "false")]).unwrap());
    let (field, message) = match parse(&without_key, &[(REQUIRE.into(), "true".into())]) {
        Err(ConfigError::Invalid { field, message }) => (field, message),
        other => panic!("expected a field error, got {other:?}"),
    };

    assert!(keyed);
    assert!(!plaintext_only);
    assert!(
        !turned_off,
        "an explicit false wins (console still in plaintext mode)"
    );
    assert_eq!(field, "bots.shop.wechat.require_encryption");
    assert!(message.contains("encoding_aes_key"), "{message}");
}

#[test]
fn passive_wait_ms_is_refused_outside_70_percent_to_100_ms_before_the_deadline() {
    for wait in ["0", "600", "3499", "4901", "5000", "6000"] {
        let (field, message) = refused(&[(WAIT, wait)]);

        assert_eq!(field, "bots.shop.wechat.passive_wait_ms", "{wait}");
        assert!(
            message.contains("3500") && message.contains("4900"),
            "{message}"
        );
        assert!(message.contains("abandoned"), "says why: {message}");
    }
    for wait in ["3500", "4500", "4900"] {
        assert!(load(&[(WAIT, wait)]).is_ok(), "{wait}");
    }
}

#[test]
fn the_passive_wait_range_follows_a_scaled_down_deadline() {
    let accepted = ["700", "900"].map(|wait| load(&[(DEADLINE, "1000"), (WAIT, wait)]).is_ok());
    let (field, message) = refused(&[(DEADLINE, "1000"), (WAIT, "600")]);
    let too_late = refused(&[(DEADLINE, "1000"), (WAIT, "901")]);

    assert_eq!(accepted, [true, true]);
    assert_eq!(field, "bots.shop.wechat.passive_wait_ms");
    assert!(
        message.contains("700") && message.contains("900"),
        "{message}"
    );
    assert_eq!(too_late.0, "bots.shop.wechat.passive_wait_ms");
}

#[test]
fn deadline_ms_is_wechats_own_and_only_scaled_down() {
    for deadline in ["0", "499", "5001"] {
        let (field, message) = refused(&[(DEADLINE, deadline), (WAIT, "400")]);

        assert_eq!(field, "bots.shop.wechat.deadline_ms", "{deadline}");
        assert!(message.contains("5000"), "{message}");
    }
}

#[test]
fn the_timestamp_window_cannot_be_turned_off_or_made_too_narrow_or_too_wide() {
    for window in ["0", "29", "3601"] {
        let (field, message) = refused(&[(WINDOW, window)]);

        assert_eq!(field, "bots.shop.wechat.timestamp_window_secs", "{window}");
        assert!(
            message.contains("15 s") || message.contains("replayed"),
            "says why: {message}"
        );
    }
    for window in ["30", "300", "3600"] {
        assert!(load(&[(WINDOW, window)]).is_ok(), "{window}");
    }
}

#[test]
fn dedup_ttl_must_outlast_platform_retries() {
    for ttl in ["0", "59"] {
        let (field, message) = refused(&[("BOTGATE__DELIVERY__DEDUP_TTL_SECS", ttl)]);

        assert_eq!(field, "delivery.dedup_ttl_secs", "{ttl}");
        assert!(message.contains("at least 60"), "{message}");
        assert!(message.contains("retr"), "says why: {message}");
    }
    assert!(load(&[("BOTGATE__DELIVERY__DEDUP_TTL_SECS", "60")]).is_ok());
}

#[test]
fn a_redis_cluster_needs_nodes_and_a_hash_tag_prefix() {
    const CLUSTER: &str = "BOTGATE__STORE__CLUSTER";
    const URL: &str = "BOTGATE__STORE__REDIS_URL";
    const PREFIX: &str = "BOTGATE__STORE__KEY_PREFIX";
    let nodes = "redis://10.0.0.1:6379, redis://10.0.0.2:6379";

    let (field, message) = refused(&[(CLUSTER, "true")]);
    assert_eq!(field, "store.cluster");
    assert!(message.contains("redis_url"), "{message}");

    for prefix in ["botgate", "bot{gate}", "{}", "{botgate"] {
        let (field, message) = refused(&[(CLUSTER, "true"), (URL, nodes), (PREFIX, prefix)]);
        assert_eq!(field, "store.key_prefix", "{prefix}");
        assert!(message.contains("{botgate}"), "shows how: {message}");
        assert!(message.contains("slot"), "says why: {message}");
    }

    let (field, _) = refused(&[
        (CLUSTER, "true"),
        (URL, "redis://10.0.0.1:6379,unix:///tmp/redis.sock"),
        (PREFIX, "{botgate}"),
    ]);
    assert_eq!(field, "store.redis_url", "every seed is a node's address");

    let settings = load(&[(CLUSTER, "true"), (URL, nodes), (PREFIX, "{botgate}")]).unwrap();
    assert!(settings.store.cluster);
    assert!(
        load(&[(URL, "redis://10.0.0.1:6379/0"), (PREFIX, "botgate")]).is_ok(),
        "a single Redis keeps any prefix"
    );
}

#[test]
fn shards_need_a_cluster_and_enough_workers() {
    const SHARDS: &str = "BOTGATE__STORE__SHARDS";
    let cluster = [
        ("BOTGATE__STORE__CLUSTER", "true"),
        ("BOTGATE__STORE__REDIS_URL", "redis://10.0.0.1:6379"),
        ("BOTGATE__STORE__KEY_PREFIX", "{botgate}"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        cluster.iter().chain(extra).copied().collect()
    };

    for shards in ["0", "257"] {
        let (field, message) = refused(&with(&[(SHARDS, shards)]));
        assert_eq!(field, "store.shards", "{shards}");
        assert!(message.contains("between 1 and 256"), "{message}");
    }
    let (field, message) = refused(&[
        ("BOTGATE__STORE__REDIS_URL", "redis://10.0.0.1:6379"),
        (SHARDS, "4"),
    ]);
    assert_eq!(field, "store.shards");
    assert!(message.contains("store.cluster"), "{message}");
    let (field, message) = refused(&with(&[
        (SHARDS, "8"),
        ("BOTGATE__DELIVERY__WORKERS", "15"),
    ]));
    assert_eq!(field, "delivery.workers");
    assert!(message.contains("twice"), "{message}");

    let settings = load(&with(&[
        (SHARDS, "8"),
        ("BOTGATE__DELIVERY__WORKERS", "16"),
    ]))
    .unwrap();
    assert_eq!(settings.store.keyspace().shard_count(), 8);
    assert_eq!(load(&[]).unwrap().store.shards, 1, "one shard by default");
}

#[test]
fn the_visibility_timeout_cannot_be_zero() {
    for timeout in ["0", "1"] {
        let (field, message) = refused(&[("BOTGATE__DELIVERY__VISIBILITY_TIMEOUT_SECS", timeout)]);

        assert_eq!(field, "delivery.visibility_timeout_secs", "{timeout}");
        assert!(message.contains("at least 2"), "{message}");
    }
}

#[test]
fn a_short_log_id_key_is_refused_without_echoing_it() {
    let (field, message) = refused(&[("BOTGATE__SERVER__LOG_ID_KEY", "tooshort")]);
    let long_enough = load(&[("BOTGATE__SERVER__LOG_ID_KEY", "sixteen-chars-ok")]);

    assert_eq!(field, "server.log_id_key");
    assert!(message.contains("16"), "{message}");
    assert!(
        !message.contains("tooshort"),
        "the key is a secret: {message}"
    );
    assert!(long_enough.is_ok());
}

const WECOM: &str = r#"
[bots.shop.wecom]
corp_id = "ww1436e0e65a779aee"
agent_id = 1000002
secret = "app-secret"
token = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
encoding_aes_key = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
"#;

#[test]
fn a_wecom_app_gets_safe_defaults_and_bad_fields_are_named() {
    let settings = parse(WECOM, &[]).unwrap();
    let wecom = settings.bots["shop"].wecom.as_ref().unwrap();
    assert!(!wecom.kf);
    assert_eq!(wecom.reply_format, super::ReplyFormat::Text);
    assert_eq!(wecom.api_base, "https://qyapi.weixin.qq.com");
    assert_eq!(wecom.timestamp_window_secs, 300);
    assert!(
        std::ptr::eq(wecom.kf_secret(), &wecom.secret),
        "kf uses the app's secret unless told"
    );

    let refused = |from: &str, to: &str| match parse(&WECOM.replace(from, to), &[]) {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("{to}: expected a field error, got {:?}", other.map(|_| ())),
    };
    assert_eq!(
        refused("6qkdMrq68n", "6qkd"),
        "bots.shop.wecom.encoding_aes_key"
    );
    assert_eq!(
        refused("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "has space"),
        "bots.shop.wecom.token"
    );
    assert_eq!(
        refused("corp_id = \"ww1436e0e65a779aee\"", "corp_id = \" \""),
        "bots.shop.wecom.corp_id"
    );
    assert_eq!(
        refused(
            "agent_id = 1000002",
            "agent_id = 1000002\ntimestamp_window_secs = 5"
        ),
        "bots.shop.wecom.timestamp_window_secs"
    );
    assert_eq!(
        refused(
            "agent_id = 1000002",
            "agent_id = 1000002\napi_base = \"ftp://x\""
        ),
        "bots.shop.wecom.api_base"
    );
}

const DINGTALK: &str = r#"
[bots.shop.dingtalk]
app_key = "dingappkey"
app_secret = "app-secret"
"#;

#[test]
fn a_dingtalk_robot_gets_safe_defaults_and_bad_fields_are_named() {
    let settings = parse(DINGTALK, &[]).unwrap();
    let dingtalk = settings.bots["shop"].dingtalk.as_ref().unwrap();
    assert_eq!(dingtalk.robot_code(), "dingappkey");
    assert_eq!(dingtalk.mode, super::DingtalkMode::Http);
    assert_eq!(dingtalk.reply, super::DingtalkReply::Text);
    assert_eq!(dingtalk.api_base, "https://api.dingtalk.com");
    assert_eq!(dingtalk.session_webhook_hosts, ["oapi.dingtalk.com"]);
    assert_eq!(dingtalk.timestamp_window_secs, 3600);

    let refused = |extra: &str| {
        let text = DINGTALK.replace("app_secret", &format!("{extra}\napp_secret"));
        match parse(&text, &[]) {
            Err(ConfigError::Invalid { field, message }) => (field, message),
            other => panic!(
                "{extra}: expected a field error, got {:?}",
                other.map(|_| ())
            ),
        }
    };
    assert_eq!(
        refused("reply = \"card\"\ncard_template_id = \" \"").0,
        "bots.shop.dingtalk.card_template_id"
    );
    assert_eq!(
        refused("card_content_key = \"\"").0,
        "bots.shop.dingtalk.card_content_key"
    );
    assert_eq!(refused("mode = \"ws\"").0, "bots.shop.dingtalk.mode");
    assert_eq!(
        refused("api_base = \"ftp://x\"").0,
        "bots.shop.dingtalk.api_base"
    );
    assert_eq!(
        refused("session_webhook_hosts = [\"https://oapi.dingtalk.com/robot\"]").0,
        "bots.shop.dingtalk.session_webhook_hosts"
    );
    assert_eq!(
        refused("timestamp_window_secs = 5").0,
        "bots.shop.dingtalk.timestamp_window_secs"
    );
    assert_eq!(
        refused("robot_code = \"\"").0,
        "bots.shop.dingtalk.robot_code"
    );
    let stream = DINGTALK.replace(
        "app_secret",
        "mode = \"stream\"\nreply = \"markdown\"\nsession_webhook_hosts = [\"http://127.0.0.1:8080\"]\napp_secret",
    );
    let stream = parse(&stream, &[]).unwrap();
    let dingtalk = stream.bots["shop"].dingtalk.as_ref().unwrap();
    assert_eq!(dingtalk.mode, super::DingtalkMode::Stream);
    assert_eq!(dingtalk.reply, super::DingtalkReply::Markdown);
}

#[test]
fn a_card_robot_defaults_to_the_public_ai_markdown_card() {
    let text = DINGTALK.replace("app_secret", "reply = \"card\"\napp_secret");

    let settings = parse(&text, &[]).unwrap();

    let dingtalk = settings.bots["shop"].dingtalk.as_ref().unwrap();
    assert_eq!(dingtalk.reply, super::DingtalkReply::Card);
    assert_eq!(
        dingtalk.card_template_id(),
        "382e4302-551d-4880-bf29-a30acfab2e71.schema"
    );
    assert_eq!(dingtalk.card_content_key, "msgContent");
}

#[test]
fn an_llm_base_url_that_does_not_parse_is_refused_at_load() {
    for (kind, extra) in [
        ("bailian", "app_id = \"app\"\napi_key = \"sk\""),
        ("openai", "model = \"qwen-plus\"\napi_key = \"sk\""),
    ] {
        let text = format!(
            "{BASE}\n[llm.main]\nkind = \"{kind}\"\nbase_url = \"https://exa mple.com\"\n{extra}\n"
        );
        match parse(&text, &[]) {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "llm.main.base_url"),
            other => panic!(
                "{kind}: expected base_url to be refused, got {:?}",
                other.err()
            ),
        }
    }
}

#[test]
fn llm_time_limits_are_refused_outside_one_second_to_a_day() {
    // TOML's largest integer would overflow the deadline arithmetic and panic the call.
    for (leaf, value) in [
        ("timeout_secs", "0"),
        ("timeout_secs", "86401"),
        ("timeout_secs", "9223372036854775807"),
        ("idle_timeout_secs", "0"),
        ("idle_timeout_secs", "9223372036854775807"),
    ] {
        for (kind, extra) in [
            ("bailian", "app_id = \"app\"\napi_key = \"sk\""),
            (
                "openai",
                "model = \"qwen-plus\"\napi_key = \"sk\"\nbase_url = \"http://127.0.0.1/v1\"",
            ),
        ] {
            let text =
                format!("{BASE}\n[llm.main]\nkind = \"{kind}\"\n{leaf} = {value}\n{extra}\n");
            match parse(&text, &[]) {
                Err(ConfigError::Invalid { field, message }) => {
                    assert_eq!(
                        field,
                        format!("llm.main.{leaf}"),
                        "{kind} {leaf} = {value}: {message}"
                    );
                    assert!(message.contains("86400"), "{message}");
                }
                other => panic!(
                    "{kind} {leaf} = {value}: expected a refusal, got {:?}",
                    other.err()
                ),
            }
        }
    }
    let text = format!(
        "{BASE}\n[llm.main]\nkind = \"bailian\"\napp_id = \"app\"\napi_key = \"sk\"\n\
         timeout_secs = 86400\nidle_timeout_secs = 1\n"
    );
    assert!(
        parse(&text, &[]).is_ok(),
        "a day and one second are the bounds"
    );
}

#[test]
fn durations_past_ten_years_are_refused_rather_than_overflowing_later() {
    // `Instant + Duration` panics on overflow; TOML's largest integer reaches it.
    for (name, field) in [
        ("BOTGATE__STORE__SESSION_TTL_SECS", "store.session_ttl_secs"),
        (
            "BOTGATE__DELIVERY__VISIBILITY_TIMEOUT_SECS",
            "delivery.visibility_timeout_secs",
        ),
        (
            "BOTGATE__DELIVERY__DEDUP_TTL_SECS",
            "delivery.dedup_ttl_secs",
        ),
        (
            "BOTGATE__SERVER__SHUTDOWN_TIMEOUT_SECS",
            "server.shutdown_timeout_secs",
        ),
    ] {
        let (refused, message) = refused(&[(name, "9223372036854775807")]);
        assert_eq!(refused, field);
        assert!(message.contains("315360000"), "{field}: {message}");
        assert!(
            load(&[(name, "315360000")]).is_ok(),
            "{field}: ten years is the bound"
        );
    }
    let text =
        format!("{BASE}\n[bots.shop.rate_limit]\nmessages = 5\nper_secs = 9223372036854775807\n");
    match parse(&text, &[]) {
        Err(ConfigError::Invalid { field, .. }) => {
            assert_eq!(field, "bots.shop.rate_limit.per_secs")
        }
        other => panic!("expected per_secs to be refused, got {:?}", other.err()),
    }
}
