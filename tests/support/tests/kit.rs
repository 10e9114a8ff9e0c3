//! Self-tests: the fakes speak the wire formats of outbound.md §1 and record what they receive.

// Test helpers outside `#[test]` functions unwrap too: a failed request ends the test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use botgate_testkit::{Answer, Failure, FakeBailian, FakePlatform, RedisServer};
use futures_util::StreamExt;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

/// One parsed Bailian SSE event.
#[derive(Debug)]
struct Event {
    id: String,
    event: String,
    status: String,
    data: Value,
}

/// Parses the native stream strictly: `id:`, `event:`, `:HTTP_STATUS/`, `data:`, blank line.
fn parse_events(raw: &str) -> Vec<Event> {
    assert!(
        raw.ends_with("\n\n"),
        "a stream ends with a blank line: {raw:?}"
    );
    raw.trim_end_matches('\n')
        .split("\n\n")
        .map(|block| {
            let lines: Vec<&str> = block.lines().collect();
            assert_eq!(lines.len(), 4, "four lines per event: {block:?}");
            Event {
                id: lines[0].strip_prefix("id:").unwrap().to_owned(),
                event: lines[1].strip_prefix("event:").unwrap().to_owned(),
                status: lines[2].strip_prefix(":HTTP_STATUS/").unwrap().to_owned(),
                data: serde_json::from_str(lines[3].strip_prefix("data:").unwrap()).unwrap(),
            }
        })
        .collect()
}

/// Posts a native completion call for `app_id` with `key`.
async fn call_app(
    bailian: &FakeBailian,
    app_id: &str,
    key: &str,
    body: Value,
    stream: bool,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/apps/{app_id}/completion",
            bailian.base_url()
        ))
        .bearer_auth(key)
        .header("X-DashScope-WorkSpace", "ws_test")
        .json(&body);
    if stream {
        request = request
            .header("X-DashScope-SSE", "enable")
            .header("Accept", "text/event-stream");
    }
    request.send().await.unwrap()
}

async fn call(bailian: &FakeBailian, body: Value, stream: bool) -> reqwest::Response {
    call_app(bailian, bailian.app_id(), bailian.api_key(), body, stream).await
}

async fn call_json(bailian: &FakeBailian, body: Value) -> (u16, Value) {
    let response = call(bailian, body, false).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn call_stream(bailian: &FakeBailian, body: Value) -> (u16, String) {
    let response = call(bailian, body, true).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn chat(bailian: &FakeBailian, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/chat/completions",
            bailian.compatible_base_url()
        ))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn history_body() -> Value {
    json!({"input": {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": "你好，世界"},
    ]}, "parameters": {}, "debug": {}})
}

fn prompt_body(prompt: &str, incremental: bool) -> Value {
    json!({"input": {"prompt": prompt}, "parameters": {"incremental_output": incremental}})
}

#[tokio::test]
async fn redis_answers_ping_and_restarts_on_the_same_port() {
    let mut server = RedisServer::start().await;
    let port = server.port();
    assert_ne!(port, 6379);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/0"));
    let mut connection = server.connection().await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut connection)
        .await
        .unwrap();

    server.stop().await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());

    server.restart().await;
    assert_eq!(server.port(), port);
    let mut connection = server.connection().await;
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(value, None, "nothing is persisted across a restart");
}

#[tokio::test]
async fn two_redis_servers_get_different_ports() {
    let first = RedisServer::start().await;
    let second = RedisServer::start().await;
    assert_ne!(first.port(), second.port());
}

#[tokio::test]
async fn echo_counts_the_messages_before_the_last_user_turn() {
    let bailian = FakeBailian::start().await;

    let (status, body) = call_json(&bailian, history_body()).await;

    assert_eq!(status, 200);
    assert_eq!(body["output"]["text"], "echo: 你好，世界 (history: 3)");
    assert_eq!(body["output"]["finish_reason"], "stop");
    let session_id = body["output"]["session_id"].as_str().unwrap();
    assert_eq!(session_id.len(), 32);
    assert!(session_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(body["output"].get("doc_references").is_none());
    assert_eq!(body["usage"]["models"][0]["model_id"], "qwen-max");
    assert!(
        body["usage"]["models"][0]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36);

    let requests = bailian.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(bailian.calls(), 1);
    assert_eq!(requests[0].path, "/api/v1/apps/app-test/completion");
    assert_eq!(requests[0].header("x-dashscope-workspace"), Some("ws_test"));
    assert_eq!(requests[0].body, history_body());
    assert!(!requests[0].streaming);
}

#[tokio::test]
async fn echo_of_a_prompt_has_no_history_and_keeps_the_session() {
    let bailian = FakeBailian::start().await;
    let body = json!({"input": {"prompt": "hi", "session_id": "abc123"}, "parameters": {}});

    let (status, body) = call_json(&bailian, body).await;

    assert_eq!(status, 200);
    assert_eq!(body["output"]["text"], "echo: hi (history: 0)");
    assert_eq!(body["output"]["session_id"], "abc123");
}

#[tokio::test]
async fn incremental_stream_has_the_bailian_quirks() {
    let bailian = FakeBailian::start().await;
    bailian.set_answer(Answer::Fixed("你好！我是一个测试助手。".to_owned()));

    let response = call(&bailian, prompt_body("hi", true), true).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let raw = response.text().await.unwrap();

    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert!(
        raw.starts_with("id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"),
        "{raw}"
    );
    assert!(raw.contains(r#""finish_reason":"null""#));
    let events = parse_events(&raw);
    assert!(events.len() > 3, "the answer is split into several frames");
    let (last, streamed) = events.split_last().unwrap();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.id, (index + 1).to_string());
        assert_eq!(event.event, "result");
        assert_eq!(event.status, "200");
        assert_eq!(event.data["request_id"], last.data["request_id"]);
        assert_eq!(
            event.data["output"]["session_id"],
            last.data["output"]["session_id"]
        );
    }
    assert!(streamed
        .iter()
        .all(|event| event.data["output"]["finish_reason"] == "null"));
    assert_eq!(last.data["output"]["finish_reason"], "stop");
    assert_eq!(last.data["output"]["text"], "");
    let text: String = streamed
        .iter()
        .map(|event| event.data["output"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "你好！我是一个测试助手。");
    let tokens: Vec<u64> = events
        .iter()
        .map(|event| {
            event.data["usage"]["models"][0]["output_tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        tokens.windows(2).all(|pair| pair[0] <= pair[1]),
        "usage grows: {tokens:?}"
    );
    assert!(bailian.requests()[0].streaming);
}

#[tokio::test]
async fn default_stream_is_cumulative() {
    let bailian = FakeBailian::start().await;
    bailian.set_answer(Answer::Fixed("abcdefgh".to_owned()));
    let body = json!({"input": {"prompt": "hi"}});

    let (status, raw) = call_stream(&bailian, body).await;

    assert_eq!(status, 200);
    let texts: Vec<String> = parse_events(&raw)
        .iter()
        .map(|event| event.data["output"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["abc", "abcdef", "abcdefgh", "abcdefgh"]);
}

#[tokio::test]
async fn accept_header_alone_turns_on_streaming() {
    let bailian = FakeBailian::start().await;

    let response = reqwest::Client::new()
        .post(bailian.completion_url())
        .bearer_auth(bailian.api_key())
        .header("Accept", "text/event-stream")
        .json(&prompt_body("hi", true))
        .send()
        .await
        .unwrap();

    let raw = response.text().await.unwrap();
    let events = parse_events(&raw);
    assert_eq!(
        events.last().unwrap().data["output"]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn frames_arrive_as_separate_writes() {
    let bailian = FakeBailian::start().await;
    bailian.set_answer(Answer::Fixed("abcdefghi".to_owned()));
    bailian.set_chunk_interval(Duration::from_millis(30));

    let response = call(&bailian, prompt_body("hi", true), true).await;
    let mut reads = response.bytes_stream();
    let first = reads.next().await.unwrap().unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = reads.next().await {
        rest.push(chunk.unwrap());
    }

    let first = String::from_utf8(first.to_vec()).unwrap();
    assert_eq!(
        parse_events(&first).len(),
        1,
        "the first read holds one frame: {first:?}"
    );
    assert!(rest.len() >= 2);
}

#[tokio::test]
async fn references_come_with_the_final_output() {
    let bailian = FakeBailian::start().await;
    bailian.set_answer(Answer::WithReferences {
        text: "见手册[1]".to_owned(),
        references: vec![("手册.pdf".to_owned(), "安装".to_owned())],
    });

    let (_, body) = call_json(&bailian, prompt_body("how", false)).await;
    let (_, raw) = call_stream(&bailian, prompt_body("how", true)).await;

    let reference = &body["output"]["doc_references"][0];
    assert_eq!(body["output"]["text"], "见手册[1]");
    assert_eq!(reference["index_id"], "1");
    assert_eq!(reference["doc_name"], "手册.pdf");
    assert_eq!(reference["title"], "安装");
    assert!(reference["doc_id"].is_string() && reference["text"].is_string());
    let events = parse_events(&raw);
    let (last, streamed) = events.split_last().unwrap();
    assert_eq!(
        last.data["output"]["doc_references"][0]["doc_name"],
        "手册.pdf"
    );
    assert!(streamed
        .iter()
        .all(|event| event.data["output"].get("doc_references").is_none()));
}

#[tokio::test]
async fn each_failure_has_its_status_and_code() {
    let bailian = FakeBailian::start().await;
    let cases = [
        (Failure::Throttled, 429, "Throttling.RateQuota"),
        (Failure::ServerError, 500, "InternalError"),
        (Failure::DataInspection, 400, "DataInspectionFailed"),
        (Failure::InvalidApiKey, 401, "InvalidApiKey"),
        (Failure::AppAccessDenied, 403, "App.AccessDenied"),
        (Failure::StreamError, 400, "DataInspectionFailed"),
        (Failure::BusinessErrorIn200, 200, "InternalError"),
        (
            Failure::Custom {
                status: 400,
                code: "Arrearage".to_owned(),
                message: "overdue".to_owned(),
            },
            400,
            "Arrearage",
        ),
    ];
    bailian.push_failures(cases.iter().map(|(failure, _, _)| failure.clone()));

    for (failure, status, code) in cases {
        let (actual_status, body) = call_json(&bailian, prompt_body("hi", false)).await;
        assert_eq!(
            (actual_status, body["code"].as_str()),
            (status, Some(code)),
            "{failure:?}"
        );
        assert!(body["message"].is_string(), "{failure:?}");
        assert!(body["request_id"].is_string(), "{failure:?}");
        assert!(body.get("output").is_none(), "{failure:?}");
    }
    let (_, body) = call_json(&bailian, prompt_body("again", false)).await;
    assert_eq!(
        body["output"]["text"], "echo: again (history: 0)",
        "normal answers resume"
    );
}

#[tokio::test]
async fn inspection_messages_tell_input_from_output() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::DataInspection, Failure::StreamError]);

    let (_, input) = call_json(&bailian, prompt_body("hi", false)).await;
    let (_, output) = call_json(&bailian, prompt_body("hi", false)).await;

    assert!(input["message"]
        .as_str()
        .unwrap()
        .starts_with("Input data may contain"));
    assert!(output["message"]
        .as_str()
        .unwrap()
        .starts_with("Output data may contain"));
}

#[tokio::test]
async fn stream_error_arrives_after_a_normal_frame_inside_a_200() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::StreamError]);

    let (status, raw) = call_stream(&bailian, prompt_body("hi", true)).await;

    assert_eq!(status, 200);
    let events = parse_events(&raw);
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].event.as_str(), events[0].status.as_str()),
        ("result", "200")
    );
    assert_eq!(events[0].data["output"]["finish_reason"], "null");
    assert_eq!(
        (events[1].event.as_str(), events[1].status.as_str()),
        ("error", "400")
    );
    assert_eq!(events[1].data["code"], "DataInspectionFailed");
    assert!(events[1].data["message"]
        .as_str()
        .unwrap()
        .starts_with("Output data may contain"));
    assert!(events[1].data["request_id"].is_string());
}

#[tokio::test]
async fn business_error_in_200_is_json_even_when_streaming() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::BusinessErrorIn200]);

    let response = call(&bailian, prompt_body("hi", true), true).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "InternalError");
    assert!(body.get("output").is_none());
}

#[tokio::test]
async fn sse_error_carries_its_status_on_the_line_and_in_the_comment() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::SseError {
        status: 429,
        code: "Throttling.AllocationQuota".to_owned(),
        message: "quota".to_owned(),
    }]);

    let (status, raw) = call_stream(&bailian, prompt_body("hi", true)).await;

    assert_eq!(status, 429);
    let events = parse_events(&raw);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].event.as_str(), events[0].status.as_str()),
        ("error", "429")
    );
    assert_eq!(events[0].data["code"], "Throttling.AllocationQuota");
}

#[tokio::test]
async fn hang_outlasts_a_client_timeout_then_answers_resume() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::Hang(Duration::from_secs(2))]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();

    let error = client
        .post(bailian.completion_url())
        .bearer_auth(bailian.api_key())
        .json(&prompt_body("hi", false))
        .send()
        .await
        .unwrap_err();

    assert!(error.is_timeout(), "{error}");
    let (status, _) = call_json(&bailian, prompt_body("hi", false)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn delay_holds_back_the_first_byte() {
    let bailian = FakeBailian::start().await;
    bailian.set_delay(Duration::from_millis(300));

    let started = Instant::now();
    let (status, _) = call_stream(&bailian, prompt_body("hi", true)).await;

    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn wrong_key_wrong_app_and_empty_input_are_rejected_without_using_a_failure() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::Throttled]);

    let wrong_key = call_app(
        &bailian,
        "app-test",
        "sk-wrong",
        prompt_body("hi", false),
        false,
    )
    .await;
    let wrong_app = call_app(
        &bailian,
        "app-other",
        "sk-test-bailian",
        prompt_body("hi", false),
        false,
    )
    .await;
    let (empty_status, empty) = call_json(&bailian, json!({"input": {}, "parameters": {}})).await;
    let (throttled, _) = call_json(&bailian, prompt_body("hi", false)).await;

    assert_eq!(wrong_key.status(), 401);
    let wrong_key: Value = wrong_key.json().await.unwrap();
    assert_eq!(wrong_key["code"], "InvalidApiKey");
    assert_eq!(wrong_key["message"], "Invalid API-key provided.");
    assert_eq!(wrong_app.status(), 403);
    let wrong_app: Value = wrong_app.json().await.unwrap();
    assert_eq!(wrong_app["code"], "App.AccessDenied");
    assert!(wrong_app["request_id"].is_string());
    assert_eq!(empty_status, 400);
    assert_eq!(empty["code"], "InvalidParameter");
    assert_eq!(
        empty["message"],
        r#"Either "prompt" or "messages" must exist and cannot both be none"#
    );
    assert_eq!(throttled, 429, "the queued failure waited for a valid call");
    assert_eq!(bailian.calls(), 4);
}

#[tokio::test]
async fn wait_for_calls_is_signalled() {
    let bailian = FakeBailian::start().await;
    assert!(!bailian.wait_for_calls(1, Duration::from_millis(50)).await);

    let (reached, (status, _)) = tokio::join!(bailian.wait_for_calls(2, WAIT), async {
        call_json(&bailian, prompt_body("one", false)).await;
        call_json(&bailian, prompt_body("two", false)).await
    });

    assert!(reached);
    assert_eq!(status, 200);
}

#[tokio::test]
async fn openai_route_answers_json() {
    let bailian = FakeBailian::start().await;
    let body = json!({"model": "qwen-plus", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]});

    let response = chat(&bailian, bailian.api_key(), body).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "qwen-plus");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: c (history: 2)"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(bailian.calls(), 1);
}

#[tokio::test]
async fn openai_route_streams_chunks_and_done() {
    let bailian = FakeBailian::start().await;
    bailian.set_answer(Answer::Fixed("流式回答测试".to_owned()));
    let body = json!({"model": "qwen-plus", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});

    let raw = chat(&bailian, bailian.api_key(), body)
        .await
        .text()
        .await
        .unwrap();

    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    let chunks: Vec<Value> = raw
        .split("\n\n")
        .filter(|line| !line.is_empty() && *line != "data: [DONE]")
        .map(|line| serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|chunk| chunk["object"] == "chat.completion.chunk"));
    let content: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "流式回答测试");
    let stop = &chunks[chunks.len() - 2];
    assert_eq!(stop["choices"][0]["finish_reason"], "stop");
    assert!(chunks[1]["choices"][0]["finish_reason"].is_null());
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6);
    assert!(bailian.requests()[0].streaming);
}

#[tokio::test]
async fn openai_route_errors_are_openai_shaped() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::DataInspection, Failure::Throttled]);
    let body = json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]});

    let wrong_key = chat(&bailian, "sk-wrong", body.clone()).await;
    let inspected = chat(&bailian, bailian.api_key(), body.clone()).await;
    let throttled = chat(&bailian, bailian.api_key(), body).await;

    assert_eq!(wrong_key.status(), 401);
    assert_eq!(
        wrong_key.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    assert_eq!(inspected.status(), 400);
    let inspected: Value = inspected.json().await.unwrap();
    assert_eq!(inspected["error"]["code"], "data_inspection_failed");
    assert!(inspected["error"]["type"].is_string() && inspected["request_id"].is_string());
    assert_eq!(throttled.status(), 429);
}

#[tokio::test]
async fn openai_stream_error_replaces_the_done_line() {
    let bailian = FakeBailian::start().await;
    bailian.push_failures([Failure::StreamError]);
    let body = json!({"model": "qwen-plus", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});

    let response = chat(&bailian, bailian.api_key(), body).await;

    assert_eq!(response.status(), 200);
    let raw = response.text().await.unwrap();
    assert!(!raw.contains("[DONE]"));
    assert!(raw.contains(r#""code":"data_inspection_failed""#), "{raw}");
}

#[tokio::test]
async fn platform_records_sends_and_signals() {
    let platform = FakePlatform::start().await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/cgi-bin/message/custom/send?access_token=TOKEN",
        platform.url()
    );
    assert!(!platform.wait_for(1, Duration::from_millis(50)).await);

    let (reached, response) = tokio::join!(
        platform.wait_for(1, WAIT),
        client
            .post(&url)
            .json(&json!({"touser": "o1", "msgtype": "text"}))
            .send()
    );

    assert!(reached);
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"errcode": 0, "errmsg": "ok"})
    );
    let received = platform.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/cgi-bin/message/custom/send");
    assert_eq!(received[0].query, "access_token=TOKEN");
    assert_eq!(received[0].query_param("access_token"), Some("TOKEN"));
    assert_eq!(received[0].body["touser"], "o1");
}

#[tokio::test]
async fn platform_plays_scripted_responses_in_order() {
    let platform = FakePlatform::start().await;
    platform.respond_to(
        "/token",
        200,
        json!({"access_token": "T", "expires_in": 7200}),
    );
    platform.push_responses([(
        200,
        json!({"errcode": 45047, "errmsg": "out of response count limit"}),
    )]);
    platform.push_responses_for("/token", [(500, json!({"errcode": -1}))]);
    let client = reqwest::Client::new();
    let send = |path: &str| {
        client
            .post(format!("{}{path}", platform.url()))
            .json(&json!({}))
            .send()
    };

    let token_failure = send("/token").await.unwrap();
    let token = send("/token").await.unwrap().json::<Value>().await.unwrap();
    let limited = send("/send").await.unwrap().json::<Value>().await.unwrap();
    let ok = send("/send").await.unwrap().json::<Value>().await.unwrap();

    assert_eq!(token_failure.status(), 500);
    assert_eq!(token["access_token"], "T");
    assert_eq!(limited["errcode"], 45047);
    assert_eq!(ok["errcode"], 0);
    assert_eq!(platform.received_on("/send").len(), 2);
}
