//! The LLM edge: each Bailian failure mapped to a reply (answer, refusal or fallback), and which ones are retried.

use std::time::{Duration, Instant};

use crate::common::{bailian, core, echo, reply, Extra, StoreKind, FALLBACK, REFUSAL};
use botgate::core::ReplyKind;
use botgate_testkit::{Answer, Failure};

streaming_and_not!(
    throttling_is_retried,
    server_errors_are_retried,
    a_business_error_inside_http_200_is_retried,
    a_throttling_error_frame_is_retried,
    retries_stop_at_the_configured_count,
    retries_zero_means_one_call,
    input_moderation_gets_the_refusal_without_retry,
    output_moderation_gets_the_refusal_without_retry,
    a_wrong_api_key_gets_the_fallback_without_retry,
    an_app_access_denied_gets_the_fallback_without_retry,
    operator_errors_get_the_fallback_without_retry,
    an_empty_answer_gets_the_fallback,
    a_hang_past_the_deadline_gets_the_fallback,
);

async fn throttling_is_retried(stream: bool) {
    let core = bailian(stream, "").await;
    core.fake
        .push_failures([Failure::Throttled, Failure::Throttled]);

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(&echo("你好", 0), ReplyKind::Answer));
    assert_eq!(core.fake.calls(), 3);
}

async fn server_errors_are_retried(stream: bool) {
    let core = bailian(stream, "").await;
    core.fake.push_failures([
        Failure::ServerError,
        Failure::Custom {
            status: 503,
            code: "ServiceUnavailable".to_owned(),
            message: "busy".to_owned(),
        },
    ]);

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(&echo("你好", 0), ReplyKind::Answer));
    assert_eq!(core.fake.calls(), 3);
}

async fn a_business_error_inside_http_200_is_retried(stream: bool) {
    let core = bailian(stream, "").await;
    core.fake.push_failures([Failure::BusinessErrorIn200]);

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(&echo("你好", 0), ReplyKind::Answer));
    assert_eq!(core.fake.calls(), 2);
}

async fn a_throttling_error_frame_is_retried(stream: bool) {
    // A proxy's 429 as an SSE body with one `event:error` frame (JSON when not streaming).
    let core = bailian(stream, "").await;
    core.fake.push_failures([Failure::SseError {
        status: 429,
        code: "Throttling.RateQuota".to_owned(),
        message: "Requests rate limit exceeded.".to_owned(),
    }]);

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(&echo("你好", 0), ReplyKind::Answer));
    assert_eq!(core.fake.calls(), 2);
}

async fn operator_errors_get_the_fallback_without_retry(stream: bool) {
    let core = bailian(stream, "").await;
    for code in ["Arrearage", "InvalidParameter"] {
        core.fake.push_failures([Failure::Custom {
            status: 400,
            code: code.to_owned(),
            message: "rejected".to_owned(),
        }]);
        let calls = core.fake.calls();

        let answer = core.say("alice", "你好").await;

        assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback), "{code}");
        assert_eq!(core.fake.calls(), calls + 1, "{code} is not retried");
    }
}

async fn an_empty_answer_gets_the_fallback(stream: bool) {
    let core = bailian(stream, "").await;
    core.fake.set_answer(Answer::Fixed(String::new()));

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback));
}

async fn retries_stop_at_the_configured_count(stream: bool) {
    let core = bailian(stream, "retries = 1").await;
    core.fake.push_failures(vec![Failure::ServerError; 3]);

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback));
    assert_eq!(core.fake.calls(), 2, "the first call and one retry");
}

async fn retries_zero_means_one_call(stream: bool) {
    let core = bailian(stream, "retries = 0").await;
    core.fake
        .push_failures([Failure::Throttled, Failure::ServerError]);

    let throttled = core.say("alice", "你好").await;
    let failed = core.say("alice", "在吗").await;

    assert_eq!(throttled, reply(FALLBACK, ReplyKind::Fallback));
    assert_eq!(failed, reply(FALLBACK, ReplyKind::Fallback));
    assert_eq!(core.fake.calls(), 2, "one call per message");
}

async fn input_moderation_gets_the_refusal_without_retry(stream: bool) {
    let core = bailian(stream, "").await;
    core.fake.push_failures([Failure::DataInspection]);

    let refusal = core.say("alice", "敏感问题").await;
    let next = core.say("alice", "换个问题").await;

    assert_eq!(refusal, reply(REFUSAL, ReplyKind::Refusal));
    assert_eq!(core.fake.calls(), 2, "no retry of the rejected question");
    assert_eq!(
        next.text,
        echo("换个问题", 0),
        "a refused exchange is not remembered"
    );
}

async fn output_moderation_gets_the_refusal_without_retry(stream: bool) {
    // Streaming: HTTP 200, one normal frame, then `event:error` DataInspectionFailed.
    let core = bailian(stream, "").await;
    core.fake.push_failures([Failure::StreamError]);

    let refusal = core.say("alice", "敏感问题").await;

    assert_eq!(refusal, reply(REFUSAL, ReplyKind::Refusal));
    assert_eq!(core.fake.calls(), 1);
}

async fn a_wrong_api_key_gets_the_fallback_without_retry(stream: bool) {
    let llm = format!("stream = {stream}");
    let core = core(
        StoreKind::Embedded,
        Extra {
            llm: &llm,
            api_key: Some("sk-wrong-key"),
            ..Extra::default()
        },
    )
    .await;

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback));
    assert_eq!(core.fake.calls(), 1);
}

async fn an_app_access_denied_gets_the_fallback_without_retry(stream: bool) {
    let llm = format!("stream = {stream}");
    let core = core(
        StoreKind::Embedded,
        Extra {
            llm: &llm,
            app_id: Some("app-unpublished"),
            ..Extra::default()
        },
    )
    .await;

    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback));
    assert_eq!(core.fake.calls(), 1);
    let request = core.fake.requests().pop().expect("a request was sent");
    assert_eq!(request.path, "/api/v1/apps/app-unpublished/completion");
}

async fn a_hang_past_the_deadline_gets_the_fallback(stream: bool) {
    let core = bailian(stream, "timeout_secs = 1").await;
    core.fake
        .push_failures([Failure::Hang(Duration::from_secs(10))]);

    let started = Instant::now();
    let answer = core.say("alice", "你好").await;
    let elapsed = started.elapsed();

    assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "gave up after {elapsed:?}, expected about 1 s"
    );
    assert_eq!(core.fake.calls(), 1, "no time was left for a retry");
}

#[tokio::test]
async fn a_stream_gone_silent_gets_the_fallback_after_the_idle_timeout() {
    let core = bailian(true, "idle_timeout_secs = 1\ntimeout_secs = 20").await;
    core.fake.set_chunk_interval(Duration::from_secs(3));

    let started = Instant::now();
    let answer = core.say("alice", "你好").await;
    let elapsed = started.elapsed();

    assert_eq!(answer, reply(FALLBACK, ReplyKind::Fallback));
    assert!(
        elapsed < Duration::from_millis(2500),
        "waited {elapsed:?} for a silent stream, idle timeout is 1 s"
    );
    // Part of the answer was already shown: a retry would show its beginning twice.
    assert_eq!(core.fake.calls(), 1);
}

#[tokio::test]
async fn a_stream_that_keeps_talking_is_not_cut_at_the_idle_timeout() {
    let core = bailian(true, "idle_timeout_secs = 1\ntimeout_secs = 20").await;
    // Five frames 400 ms apart: 1.6 s in all, never 1 s silent.
    let answer_text = "一二三四五六七八九十";
    core.fake.set_answer(Answer::Fixed(answer_text.to_owned()));
    core.fake.set_chunk_interval(Duration::from_millis(400));

    let started = Instant::now();
    let answer = core.say("alice", "你好").await;

    assert_eq!(answer, reply(answer_text, ReplyKind::Answer));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the frames did not come 400 ms apart, so the idle timeout was not put to the test"
    );
    assert_eq!(core.fake.calls(), 1);
}
