//! The LLM wire: streaming and not give the same text, deltas, Bailian request bodies and session mode, the OpenAI-compatible provider.

use crate::common::{bailian, core, echo, reply, text, Extra, StoreKind, BOT, FALLBACK, REFUSAL};
use botgate::core::ReplyKind;
use botgate_testkit::{Answer, Failure, FakeBailian};

streaming_and_not!(
    deltas_concatenate_to_the_final_text,
    bailian_receives_the_history_as_input_messages,
    openai_compatible_provider_answers_with_memory,
);

async fn deltas_concatenate_to_the_final_text(stream: bool) {
    let core = bailian(stream, "").await;
    core.fake.set_answer(Answer::Fixed(MULTI_BYTE.to_owned()));
    let mut deltas: Vec<String> = Vec::new();
    let mut collect = |delta: &str| deltas.push(delta.to_owned());

    let answer = core
        .conversations
        .handle(BOT, &text("alice", "怎么退货？"), Some(&mut collect))
        .await
        .expect("the core handles the message")
        .expect("the message gets a reply");

    assert_eq!(answer, reply(MULTI_BYTE, ReplyKind::Answer));
    assert_eq!(deltas.concat(), MULTI_BYTE);
    if stream {
        assert!(deltas.len() > 1, "streamed in pieces: {deltas:?}");
    } else {
        assert_eq!(deltas.len(), 1);
    }
}

async fn bailian_receives_the_history_as_input_messages(stream: bool) {
    let core = bailian(stream, "").await;

    core.say("alice", "你好").await;
    core.say("alice", "再说一次").await;

    let requests = core.fake.requests();
    let second = &requests[1];
    assert_eq!(
        second.body["input"]["messages"],
        serde_json::json!([
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": echo("你好", 0)},
            {"role": "user", "content": "再说一次"},
        ])
    );
    assert_eq!(
        second.header("authorization"),
        Some("Bearer sk-test-bailian")
    );
    assert_eq!(second.streaming, stream);
    let incremental = second.body["parameters"]["incremental_output"].as_bool();
    if stream {
        assert_eq!(incremental, Some(true), "incremental output when streaming");
    } else {
        assert_ne!(incremental, Some(true));
    }
}

async fn openai_compatible_provider_answers_with_memory(stream: bool) {
    let fake = FakeBailian::start().await;
    let settings = crate::common::parse(&format!(
        r#"
[llm.main]
kind = "openai"
base_url = "{base_url}"
api_key = "${{BAILIAN_KEY}}"
model = "qwen-plus"
stream = {stream}

[bots.shop]
fallback = "{FALLBACK}"
refusal = "{REFUSAL}"
"#,
        base_url = fake.compatible_base_url(),
    ));
    let conversations = crate::common::conversations(&settings).await;

    let first = crate::common::say(&conversations, "alice", "你好").await;
    let second = crate::common::say(&conversations, "alice", "再说一次").await;
    fake.push_failures([Failure::Throttled]);
    let retried = crate::common::say(&conversations, "alice", "第三句").await;
    fake.push_failures([Failure::DataInspection]);
    let refused = crate::common::say(&conversations, "alice", "敏感").await;
    fake.push_failures([Failure::StreamError]);
    let refused_late = crate::common::say(&conversations, "alice", "敏感").await;
    fake.set_answer(Answer::Fixed(MULTI_BYTE.to_owned()));
    let fixed = crate::common::say(&conversations, "bob", "你好").await;

    assert_eq!(first, reply(&echo("你好", 0), ReplyKind::Answer));
    assert_eq!(second, reply(&echo("再说一次", 2), ReplyKind::Answer));
    assert_eq!(retried, reply(&echo("第三句", 4), ReplyKind::Answer));
    assert_eq!(refused, reply(REFUSAL, ReplyKind::Refusal));
    assert_eq!(refused_late, reply(REFUSAL, ReplyKind::Refusal));
    assert_eq!(fixed, reply(MULTI_BYTE, ReplyKind::Answer));
    assert_eq!(
        fake.calls(),
        7,
        "one retry for the throttled call, none for refusals"
    );
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/compatible-mode/v1/chat/completions");
    assert_eq!(request.body["model"], "qwen-plus");
    assert_eq!(request.streaming, stream);
}

/// Multi-byte text longer than one streamed chunk, so chunks split between characters' bytes
/// would show.
const MULTI_BYTE: &str = "您好！退货请在签收后七天内于订单页点击“申请售后”，运费由我们承担。😊";

#[tokio::test]
async fn streaming_and_not_give_the_same_final_text() {
    let mut replies = Vec::new();
    for stream in [true, false] {
        let core = bailian(stream, "").await;
        core.fake.set_answer(Answer::Fixed(MULTI_BYTE.to_owned()));
        let fixed = core.say("alice", "你好").await;
        core.fake.set_answer(Answer::Echo);
        let echoed = core.say("alice", "再说一次").await;
        let remembered = core.fake.requests()[1].body["input"]["messages"][1].clone();
        replies.push((fixed, echoed, remembered));
    }

    assert_eq!(replies[0], replies[1], "streaming vs not");
    let (fixed, echoed, remembered) = &replies[0];
    assert_eq!(fixed, &reply(MULTI_BYTE, ReplyKind::Answer));
    assert_eq!(echoed.text, echo("再说一次", 2));
    assert_eq!(
        remembered["content"], MULTI_BYTE,
        "the whole answer was remembered"
    );
}

#[tokio::test]
async fn bailian_session_mode_sends_the_session_id_instead_of_messages() {
    let core = core(
        StoreKind::Embedded,
        Extra {
            bot: r#"history = "bailian_session""#,
            ..Extra::default()
        },
    )
    .await;

    core.say("alice", "你好").await;
    core.say("alice", "再说一次").await;
    core.say("alice", "第三句").await;
    core.say("alice", "/reset").await;
    core.say("alice", "重新开始").await;

    let inputs: Vec<serde_json::Value> = core
        .fake
        .requests()
        .into_iter()
        .map(|request| request.body["input"].clone())
        .collect();
    assert_eq!(inputs.len(), 4, "/reset made no call");
    assert!(inputs[0].get("session_id").is_none(), "{}", inputs[0]);
    assert_eq!(inputs[0]["messages"][0]["content"], "你好");
    let session = inputs[1]["session_id"].as_str().expect("a session id");
    assert!(!session.is_empty());
    assert!(inputs[1].get("messages").is_none(), "{}", inputs[1]);
    assert_eq!(inputs[1]["prompt"], "再说一次");
    assert_eq!(
        inputs[2]["session_id"], session,
        "the same session continues"
    );
    assert!(
        inputs[3].get("session_id").is_none(),
        "/reset forgot the session: {}",
        inputs[3]
    );
}

#[tokio::test]
async fn openai_stream_chunks_mentioning_error_are_not_errors() {
    // The fake echoes the configured model in every chunk, so `"model":"error"` is the simplest
    // way to get `"error"` into a normal chunk; a delta whose content is exactly `error` does
    // the same with any model.
    let fake = FakeBailian::start().await;
    let settings = crate::common::parse(&format!(
        r#"
[llm.main]
kind = "openai"
base_url = "{base_url}"
api_key = "${{BAILIAN_KEY}}"
model = "error"

[bots.shop]
"#,
        base_url = fake.compatible_base_url(),
    ));
    let conversations = crate::common::conversations(&settings).await;

    let answer = crate::common::say(&conversations, "alice", "你好").await;

    assert_eq!(answer, reply(&echo("你好", 0), ReplyKind::Answer));
}
