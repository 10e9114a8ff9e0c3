//! The simulator's requests and frames round-trip through `DingtalkRobot`, the `Adapter` and
//! the Stream frame parser.

mod support;

use botgate_contract::{
    Adapter, AdapterError, Content, HeaderList, Inbound, Method, Outcome, RawRequest, Response,
};
use botgate_dingtalk::simulator::{
    stream_callback_frame, stream_disconnect_frame, stream_ping_frame, SESSION_WEBHOOK_LIFETIME_MS,
};
use botgate_dingtalk::stream::{parse_frame, Frame};
use botgate_dingtalk::{
    ConversationType, DingtalkRobot, ReplyContext, RobotInbound, SignedRequest, SimulatedMessage,
};

const NOW_SECS: u64 = 1_700_000_000;
const NOW_MS: u64 = NOW_SECS * 1000;
const WEBHOOK: &str = "https://oapi.dingtalk.com/robot/sendBySession?session=sim-1";

fn robot() -> DingtalkRobot {
    DingtalkRobot::new("SECsimulated")
}

fn accept(robot: &DingtalkRobot, request: &SignedRequest) -> Result<RobotInbound, AdapterError> {
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    robot.accept(&RawRequest {
        method: Method::Post,
        query: "",
        headers: &HeaderList(&headers),
        body: request.body.as_bytes(),
        now_secs: NOW_SECS,
    })
}

fn expect_message(
    inbound: Result<RobotInbound, AdapterError>,
) -> (botgate_contract::InboundMessage, ReplyContext) {
    match inbound {
        Ok(Inbound::Message { message, reply }) => (message, reply),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_one_to_one_message_round_trips_through_the_adapter() {
    let robot = robot();
    let simulated = SimulatedMessage::new("msg-1", " 你好 @张三 ").with_session_webhook(WEBHOOK);

    let request = robot.sign_request(&simulated, NOW_MS);
    let (message, reply) = expect_message(accept(&robot, &request));

    assert_eq!(message.message_id, "msg-1");
    assert_eq!(message.conversation, simulated.conversation_id);
    assert_eq!(message.sender, "simulated-staff");
    assert_eq!(message.content, Content::Text("你好 @张三".into()));
    assert_eq!(reply.conversation_type, ConversationType::Single);
    assert_eq!(reply.session_webhook.as_deref(), Some(WEBHOOK));
    assert_eq!(
        reply.session_webhook_expires_ms,
        Some(NOW_MS + SESSION_WEBHOOK_LIFETIME_MS)
    );
    assert_eq!(reply.robot_code.as_deref(), Some("dingsimulatedrobot"));
}

#[test]
fn a_group_mention_round_trips_with_the_sender_to_mention() {
    let robot = robot().robot_code("dingsimulatedrobot");
    let simulated = SimulatedMessage::new("msg-2", " 帮助").in_group();

    let (message, reply) = expect_message(accept(&robot, &robot.sign_request(&simulated, NOW_MS)));

    assert_eq!(message.content, Content::Text("帮助".into()));
    assert!(reply.is_group());
    assert_eq!(reply.at_user_ids(), vec!["simulated-staff".to_owned()]);
}

#[test]
fn a_request_signed_for_another_robot_is_refused() {
    let request =
        DingtalkRobot::new("another").sign_request(&SimulatedMessage::new("m", "x"), NOW_MS);

    assert_eq!(accept(&robot(), &request), Err(AdapterError::BadSignature));
}

#[test]
fn the_adapter_acknowledges_with_an_empty_200_and_never_answers_inline() {
    let robot = robot();
    let (_, reply) = expect_message(accept(
        &robot,
        &robot.sign_request(&SimulatedMessage::new("m", "x"), NOW_MS),
    ));
    let empty = Response {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: String::new(),
    };

    assert_eq!(robot.render(&reply, "答案", NOW_SECS, &[0; 16]), empty);
    for outcome in [
        Outcome::Queued { job: "j" },
        Outcome::Duplicate,
        Outcome::Ignored,
    ] {
        assert_eq!(robot.acknowledge(outcome), empty);
    }
}

#[test]
fn a_stream_callback_frame_carries_the_same_message() {
    let robot = robot();
    let simulated = SimulatedMessage::new("msg-3", " 流模式").in_group();
    let over_http = accept(&robot, &robot.sign_request(&simulated, NOW_MS));

    let frame = parse_frame(&stream_callback_frame(&simulated, "frame-1", NOW_MS)).unwrap();

    assert_eq!(
        frame,
        Frame::Callback {
            message_id: "frame-1".into(),
            topic: "/v1.0/im/bot/messages/get".into(),
            data: over_http,
        }
    );
}

#[test]
fn stream_system_frames_round_trip() {
    assert_eq!(
        parse_frame(&stream_ping_frame("p", "123-dsfs", NOW_MS)),
        Ok(Frame::Ping {
            message_id: "p".into(),
            data: r#"{"opaque":"123-dsfs"}"#.into()
        })
    );
    assert_eq!(
        parse_frame(&stream_disconnect_frame(
            "d",
            "connection is expired",
            NOW_MS
        )),
        Ok(Frame::Disconnect {
            reason: Some("connection is expired".into())
        })
    );
}
