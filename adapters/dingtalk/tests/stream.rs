//! Stream mode: the connection-open call, the socket URL, server frames and the ACKs.

mod support;

use botgate_contract::{AdapterError, Content, Inbound};
use botgate_dingtalk::stream::{
    ack_callback, ack_error, ack_not_found, ack_pong, parse_frame, websocket_url, Frame,
    OpenConnectionRequest, OpenConnectionResponse, BOT_MESSAGE_TOPIC, MAX_FRAME_BYTES,
    OPEN_CONNECTION_URL,
};
use serde_json::{json, Value};
use support::*;

/// A frame like §8.2's, carrying `data`.
fn frame(kind: &str, topic: &str, message_id: &str, data: &str) -> String {
    json!({
        "specVersion": "1.0",
        "type": kind,
        "headers": {
            "appId": "1305d5f5-0000", "contentType": "application/json",
            "messageId": message_id, "time": "1690362102194", "topic": topic
        },
        "data": data,
    })
    .to_string()
}

#[test]
fn the_open_request_subscribes_to_robot_messages() {
    let mut request =
        OpenConnectionRequest::robot_messages("dingappkey", "app-secret", "botgate/0.1.0");

    assert_eq!(
        request.to_json(),
        r#"{"clientId":"dingappkey","clientSecret":"app-secret","subscriptions":[{"type":"CALLBACK","topic":"/v1.0/im/bot/messages/get"}],"ua":"botgate/0.1.0"}"#
    );
    request.local_ip = Some("10.34.22.11".into());
    assert!(request.to_json().ends_with(r#","localIp":"10.34.22.11"}"#));
    assert!(!format!("{request:?}").contains("app-secret"));
    assert_eq!(
        OPEN_CONNECTION_URL,
        "https://api.dingtalk.com/v1.0/gateway/connections/open"
    );
}

#[test]
fn the_open_response_gives_the_socket_url() {
    let response: OpenConnectionResponse = serde_json::from_str(
        r#"{"endpoint": "wss://wss-open-connection.dingtalk.com:443/connect", "ticket": "7724109a-ea43-4aa2-b803-87d82c5aaee6"}"#,
    )
    .unwrap();

    assert_eq!(
        response.websocket_url(),
        "wss://wss-open-connection.dingtalk.com:443/connect?ticket=7724109a-ea43-4aa2-b803-87d82c5aaee6"
    );
    assert!(!format!("{response:?}").contains("7724109a"));
}

#[test]
fn tickets_are_percent_encoded() {
    assert_eq!(
        websocket_url("wss://h/connect", "a+b/c=d e&f~_.-"),
        "wss://h/connect?ticket=a%2Bb%2Fc%3Dd%20e%26f~_.-"
    );
    assert_eq!(
        websocket_url("wss://h/connect?region=x", "t"),
        "wss://h/connect?region=x&ticket=t"
    );
}

#[test]
fn a_robot_callback_carries_the_decoded_message() {
    let text = frame(
        "CALLBACK",
        BOT_MESSAGE_TOPIC,
        "212ca9d7_974_1898c159aa6_1783b",
        SAMPLE_BODY,
    );

    let parsed = parse_frame(&text).unwrap();

    let Frame::Callback {
        message_id,
        topic,
        data: Ok(Inbound::Message { message, reply }),
    } = parsed
    else {
        panic!("{parsed:?}");
    };
    assert_eq!(message_id, "212ca9d7_974_1898c159aa6_1783b");
    assert_eq!(topic, BOT_MESSAGE_TOPIC);
    assert_eq!(message.message_id, "msgLICYeHgY4JtMQw==");
    assert_eq!(message.content, Content::Text("测试数据".into()));
    assert!(reply.is_group());
}

#[test]
fn a_group_callback_without_a_mention_is_ignored_but_still_acknowledged() {
    let data = sample_with(json!({ "isInAtList": false }));

    let parsed = parse_frame(&frame("CALLBACK", BOT_MESSAGE_TOPIC, "m1", &data)).unwrap();

    assert_eq!(
        parsed,
        Frame::Callback {
            message_id: "m1".into(),
            topic: BOT_MESSAGE_TOPIC.into(),
            data: Ok(Inbound::Ignore),
        }
    );
}

#[test]
fn a_callback_with_bad_data_keeps_its_message_id_for_the_ack() {
    for data in ["", "not json", "{}", r#"{"msgId":"x"}"#] {
        let parsed = parse_frame(&frame("CALLBACK", BOT_MESSAGE_TOPIC, "m2", data)).unwrap();

        match parsed {
            Frame::Callback {
                message_id,
                data: Err(AdapterError::Malformed(_)),
                ..
            } => assert_eq!(message_id, "m2"),
            other => panic!("{data}: {other:?}"),
        }
    }
}

#[test]
fn ping_disconnect_and_the_rest() {
    let ping = frame("SYSTEM", "ping", "p1", r#"{"opaque":"123-dsfs"}"#);
    let disconnect = frame(
        "SYSTEM",
        "disconnect",
        "d1",
        r#"{"reason":"connection is expired"}"#,
    );
    let mute_disconnect = frame("SYSTEM", "disconnect", "d2", "garbage");
    let event = frame("EVENT", "*", "e1", "{}");
    let card = frame("CALLBACK", "/v1.0/card/instances/callback", "c1", "{}");

    assert_eq!(
        parse_frame(&ping),
        Ok(Frame::Ping {
            message_id: "p1".into(),
            data: r#"{"opaque":"123-dsfs"}"#.into()
        })
    );
    assert_eq!(
        parse_frame(&disconnect),
        Ok(Frame::Disconnect {
            reason: Some("connection is expired".into())
        })
    );
    assert_eq!(
        parse_frame(&mute_disconnect),
        Ok(Frame::Disconnect { reason: None })
    );
    assert_eq!(
        parse_frame(&event),
        Ok(Frame::Other {
            kind: "EVENT".into(),
            topic: Some("*".into()),
            message_id: Some("e1".into())
        })
    );
    assert_eq!(
        parse_frame(&card),
        Ok(Frame::Other {
            kind: "CALLBACK".into(),
            topic: Some("/v1.0/card/instances/callback".into()),
            message_id: Some("c1".into())
        })
    );
}

#[test]
fn an_odd_header_does_not_cost_the_frame() {
    let mut text: Value = serde_json::from_str(&frame("SYSTEM", "ping", "p1", "{}")).unwrap();
    text["headers"]["time"] = json!(1690362102194u64);
    text["extra"] = json!({"anything": true});

    let parsed = parse_frame(&text.to_string());

    assert!(matches!(parsed, Ok(Frame::Ping { .. })), "{parsed:?}");
}

#[test]
fn garbage_frames_are_errors_never_panics() {
    let big = frame(
        "CALLBACK",
        BOT_MESSAGE_TOPIC,
        "m",
        &"x".repeat(MAX_FRAME_BYTES),
    );
    let cases = [
        String::new(),
        "null".into(),
        "[]".into(),
        "{}".into(),
        r#"{"type":1}"#.into(),
        r#"{"type":""}"#.into(),
        r#"{"type":"CALLBACK","headers":"x"}"#.into(),
        r#"{"type":"CALLBACK","data":{}}"#.into(),
        // A message must be ACKed by its id: one without is refused, not guessed at.
        frame("CALLBACK", BOT_MESSAGE_TOPIC, "", SAMPLE_BODY),
        frame("SYSTEM", "ping", "", "{}"),
        "{\"type\":\"SYSTEM\"".into(),
    ];

    for text in cases {
        assert!(parse_frame(&text).is_err(), "{text}");
    }
    assert_eq!(parse_frame(&big), Err(AdapterError::TooLarge));
}

#[test]
fn acks_are_rendered_as_the_sdks_send_them() {
    assert_eq!(
        ack_callback("212ca9d7_974_1898c159aa6_1783b"),
        r#"{"code":200,"headers":{"contentType":"application/json","messageId":"212ca9d7_974_1898c159aa6_1783b"},"message":"OK","data":"{\"response\": null}"}"#
    );
    assert_eq!(
        ack_pong("p1", r#"{"opaque":"123-dsfs"}"#),
        r#"{"code":200,"headers":{"contentType":"application/json","messageId":"p1"},"message":"ok","data":"{\"opaque\":\"123-dsfs\"}"}"#
    );
    let not_found: Value = serde_json::from_str(&ack_not_found("e1")).unwrap();
    let error: Value = serde_json::from_str(&ack_error("m2", "not a robot message")).unwrap();
    assert_eq!(not_found["code"], 404);
    assert_eq!(not_found["headers"]["messageId"], "e1");
    assert_eq!(error["code"], 400);
    assert_eq!(error["message"], "not a robot message");
}

#[test]
fn acks_escape_whatever_they_echo() {
    let echoed = "\"}\n{\u{0}";

    let ack: Value = serde_json::from_str(&ack_pong("p\"1", echoed)).unwrap();

    assert_eq!(ack["data"], echoed);
    assert_eq!(ack["headers"]["messageId"], "p\"1");
}
