//! DingTalk AI cards end to end (`reply = "card"`): a real replica and Redis, the fake Bailian
//! streaming slowly, and the fake DingTalk recording the card calls (outbound.md §4.4).

use std::time::{Duration, Instant};

use botgate_testkit::{Answer, Failure, Received};
use serde_json::{json, Value};

use crate::dingtalk::{dingtalk_config, dingtalk_stack, message, post, wait_for_path, WEBHOOK};
use crate::harness::{Replica, Stack};

const CREATE: &str = "/v1.0/card/instances/createAndDeliver";
const STREAMING: &str = "/v1.0/card/streaming";
const INSTANCES: &str = "/v1.0/card/instances";
const PUBLIC_TEMPLATE: &str = "382e4302-551d-4880-bf29-a30acfab2e71.schema";
/// The bot's default fallback text: what a failed generation stores as the reply.
const FALLBACK: &str = "抱歉，服务暂时繁忙，请稍后再试";
/// 36 characters: the fake streams three per frame, so twelve deltas.
const ANSWER: &str = "卡片随着回答的生成而更新，每次都带上到目前为止的全部内容，最后完成定稿。";
const DELTAS: usize = 12;

/// Waits until a request on `path` satisfies `done`; returns everything on `path` by then.
async fn wait_for_card(
    stack: &Stack,
    path: &str,
    done: impl Fn(&Received) -> bool,
) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let received = stack.platform.received_on(path);
        if received.iter().any(&done) {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "no such request on {path}: {received:?}"
        );
        let seen = stack.platform.received().len();
        stack
            .platform
            .wait_for(seen + 1, Duration::from_millis(200))
            .await;
    }
}

fn flow_status(received: &Received) -> &Value {
    &received.body["cardData"]["cardParamMap"]["flowStatus"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_streams_coalesced_cumulative_updates_and_is_finalized_with_the_answer() {
    let stack = dingtalk_stack().await;
    stack.fake.set_answer(Answer::Fixed(ANSWER.to_owned()));
    stack.fake.set_chunk_interval(Duration::from_millis(200));
    let replica = Replica::start(dingtalk_config("a", &stack, "reply = \"card\"")).await;

    let answer = post(
        &replica,
        &message(&stack, "msg-card", "讲讲卡片").in_group(),
    )
    .await;

    assert_eq!(answer.0, 200);
    let instances = wait_for_card(&stack, INSTANCES, |update| flow_status(update) == "3").await;
    let created = stack.platform.received_on(CREATE);
    assert_eq!(created.len(), 1, "one card per answer");
    let card = &created[0].body;
    assert_eq!(created[0].method, "POST");
    assert_eq!(card["cardTemplateId"], PUBLIC_TEMPLATE);
    assert_eq!(
        card["openSpaceId"],
        "dtv1.card//IM_GROUP.cidSimulatedGroup=="
    );
    assert_eq!(
        card["imGroupOpenDeliverModel"]["robotCode"],
        crate::dingtalk::APP_KEY
    );
    assert!(card["imGroupOpenDeliverModel"]["atUserIds"]["simulated-staff"].is_string());
    let track = card["outTrackId"].clone();

    let streamed = stack.platform.received_on(STREAMING);
    assert!(streamed
        .iter()
        .all(|update| update.method == "PUT" && update.body["outTrackId"] == track));
    assert!(streamed
        .iter()
        .all(|update| update.body["isFull"] == true && update.body["key"] == "msgContent"));
    let (last, intermediate) = streamed.split_last().expect("a final update");
    assert!(
        (2..DELTAS).contains(&intermediate.len()),
        "coalesced: several updates, fewer than the {DELTAS} deltas; got {}",
        intermediate.len()
    );
    for pair in intermediate.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(400), "updates {gap:?} apart");
        let (before, after) = (
            pair[0].body["content"].as_str().unwrap(),
            pair[1].body["content"].as_str().unwrap(),
        );
        assert!(
            after.len() > before.len() && after.starts_with(before),
            "cumulative: {before:?} then {after:?}"
        );
    }
    assert!(intermediate
        .iter()
        .all(|update| update.body["isFinalize"] == false));
    assert!(ANSWER.starts_with(intermediate[0].body["content"].as_str().unwrap()));
    assert_eq!(
        (
            &last.body["content"],
            &last.body["isFinalize"],
            &last.body["isError"]
        ),
        (&json!(ANSWER), &json!(true), &json!(false)),
        "finalized with the stored answer"
    );
    let finished = instances.last().unwrap();
    assert_eq!(
        finished.body["cardData"]["cardParamMap"]["msgContent"],
        ANSWER
    );
    assert!(
        finished.at >= last.at,
        "the state follows the final content"
    );
    assert!(
        stack.platform.received_on(WEBHOOK).is_empty(),
        "no markdown besides the card"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_refused_for_a_missing_permission_falls_back_to_one_markdown_reply() {
    let stack = dingtalk_stack().await;
    stack.platform.respond_to(
        CREATE,
        403,
        json!({
            "code": "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "message": "没有调用该接口的权限",
            "accessdenieddetail": {"requiredScopes": ["Card.Instance.Write"]},
        }),
    );
    let replica = Replica::start(dingtalk_config("a", &stack, "reply = \"card\"")).await;

    post(&replica, &message(&stack, "msg-no-card", "你好").in_group()).await;

    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["msgtype"], "markdown");
    assert_eq!(sent[0].body["markdown"]["text"], "echo: 你好 (history: 0)");
    assert_eq!(sent[0].body["at"]["atUserIds"], json!(["simulated-staff"]));
    // Every card call is made before the fallback is sent (the card is stopped first).
    assert_eq!(
        stack.platform.received_on(CREATE).len(),
        1,
        "the refusal is not retried"
    );
    assert!(stack.platform.received_on(STREAMING).is_empty());
    assert!(stack.platform.received_on(INSTANCES).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_whose_final_update_fails_is_marked_failed_and_the_answer_goes_as_markdown() {
    let stack = dingtalk_stack().await;
    stack.fake.set_answer(Answer::Fixed(ANSWER.to_owned()));
    // Every streaming update is refused: the card can never show the finished answer.
    stack.platform.respond_to(
        STREAMING,
        500,
        json!({"code": "ServiceUnavailable", "message": "busy"}),
    );
    let replica = Replica::start(dingtalk_config("a", &stack, "reply = \"card\"")).await;

    post(
        &replica,
        &message(&stack, "msg-final-fails", "讲讲").in_group(),
    )
    .await;

    let sent = wait_for_path(&stack, WEBHOOK, 1).await;
    assert_eq!(sent.len(), 1, "the answer goes out once, as markdown");
    assert_eq!(sent[0].body["msgtype"], "markdown");
    assert_eq!(sent[0].body["markdown"]["text"], ANSWER);
    assert_eq!(stack.platform.received_on(CREATE).len(), 1);
    let instances = wait_for_card(&stack, INSTANCES, |update| flow_status(update) == "5").await;
    assert!(
        instances.iter().all(|update| flow_status(update) != "3"),
        "never shown as finished: {instances:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        stack.platform.received_on(WEBHOOK).len(),
        1,
        "and only once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_generation_finalizes_the_card_as_failed_with_the_stored_notice() {
    let stack = dingtalk_stack().await;
    stack.fake.push_failures([Failure::ServerError]);
    let replica = Replica::start(dingtalk_config("a", &stack, "reply = \"card\"")).await;

    post(&replica, &message(&stack, "msg-llm-down", "在吗")).await;

    let instances = wait_for_card(&stack, INSTANCES, |update| flow_status(update) == "5").await;
    let created = stack.platform.received_on(CREATE);
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].body["openSpaceId"],
        "dtv1.card//IM_ROBOT.simulated-staff"
    );
    let streamed = stack.platform.received_on(STREAMING);
    let last = streamed.last().expect("a final update");
    assert_eq!(
        (
            &last.body["content"],
            &last.body["isFinalize"],
            &last.body["isError"]
        ),
        (&json!(FALLBACK), &json!(true), &json!(true))
    );
    let failed = instances.last().unwrap();
    assert_eq!(
        failed.body["cardData"]["cardParamMap"]["msgContent"],
        FALLBACK
    );
    assert!(
        instances.iter().all(|update| flow_status(update) != "3"),
        "never shown as finished"
    );
    assert!(stack.platform.received_on(WEBHOOK).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_taken_over_mid_stream_finishes_the_same_card() {
    let stack = dingtalk_stack().await;
    stack.fake.set_answer(Answer::Fixed(ANSWER.to_owned()));
    stack.fake.set_chunk_interval(Duration::from_millis(300));
    let mut a = Replica::start(dingtalk_config("a", &stack, "reply = \"card\"")).await;
    let mut b = Replica::start(dingtalk_config("b", &stack, "reply = \"card\"")).await;

    post(&a, &message(&stack, "msg-takeover", "接着讲").in_group()).await;
    wait_for_card(&stack, STREAMING, |update| {
        update.body["isFinalize"] == false
    })
    .await;
    let streamer = stack.fake.requests()[0]
        .header("x-dashscope-workspace")
        .unwrap()
        .to_owned();
    match streamer.as_str() {
        "a" => a.kill9().await,
        _ => b.kill9().await,
    }

    wait_for_card(&stack, INSTANCES, |update| flow_status(update) == "3").await;
    assert_eq!(
        stack.fake.calls(),
        2,
        "the survivor generated the answer again"
    );
    assert_eq!(
        stack.platform.received_on(CREATE).len(),
        1,
        "the survivor streams into the card it finds"
    );
    let track = &stack.platform.received_on(CREATE)[0].body["outTrackId"];
    let streamed = stack.platform.received_on(STREAMING);
    assert!(streamed
        .iter()
        .all(|update| &update.body["outTrackId"] == track));
    let last = streamed.last().unwrap();
    assert_eq!(
        (&last.body["content"], &last.body["isFinalize"]),
        (&json!(ANSWER), &json!(true))
    );
    assert!(stack.platform.received_on(WEBHOOK).is_empty());
}
