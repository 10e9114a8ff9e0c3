//! Property tests: hostile input never panics, and every simulated message decodes back to what
//! was sent.

use botgate_contract::{Content, HeaderList, Inbound};
use botgate_dingtalk::outbound::{webhook_host_allowed, PARTS, PART_BYTES};
use botgate_dingtalk::stream::parse_frame;
use botgate_dingtalk::{decode_robot_message, DingtalkRobot, SimulatedMessage};
use proptest::prelude::*;

const NOW_MS: u64 = 1_700_000_000_000;

/// Bodies: arbitrary bytes, JSON-looking fragments, and a real body with bytes flipped.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let real = SimulatedMessage::new("m", "hi")
        .in_group()
        .to_json(NOW_MS)
        .into_bytes();
    let fragment = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\"msgtype\":\"text\",".to_owned()),
        Just("\"conversationType\":\"2\",".to_owned()),
        Just("\"text\":{\"content\":".to_owned()),
        Just("\"data\":\"".to_owned()),
        "[\\[\\]{}\":,a-zA-Z0-9 \\\\]{0,16}",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat().into_bytes()),
        (Just(real), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut body, at, byte)| {
            let at = at.index(body.len());
            body[at] = byte;
            body
        }),
    ]
}

proptest! {
    #[test]
    fn decoding_never_panics(body in body(), timestamp in ".{0,20}", sign in ".{0,50}") {
        let robot = DingtalkRobot::new("secret");
        let headers = [("timestamp", timestamp.as_str()), ("sign", sign.as_str())];
        let _ = robot.decode(&HeaderList(&headers), &body, NOW_MS);
        let _ = decode_robot_message(&body);
    }

    #[test]
    fn correctly_signed_hostile_bodies_never_panic(body in body()) {
        let robot = DingtalkRobot::new("secret");
        let sign = robot.sign(NOW_MS);
        let timestamp = NOW_MS.to_string();
        let headers = [("timestamp", timestamp.as_str()), ("sign", sign.as_str())];
        let _ = robot.decode(&HeaderList(&headers), &body, NOW_MS);
    }

    #[test]
    fn frame_parsing_never_panics(body in body()) {
        let text = String::from_utf8_lossy(&body);
        let _ = parse_frame(&text);
        let wrapped = serde_json::json!({
            "type": "CALLBACK",
            "headers": { "messageId": "m", "topic": "/v1.0/im/bot/messages/get" },
            "data": text,
        });
        let _ = parse_frame(&wrapped.to_string());
    }

    #[test]
    fn simulated_messages_decode_to_their_trimmed_text(
        text in "\\PC{0,64}",
        message_id in "[A-Za-z0-9+/=]{1,24}",
        group in any::<bool>(),
    ) {
        let robot = DingtalkRobot::new("secret");
        let mut simulated = SimulatedMessage::new(&message_id, &text);
        if group {
            simulated = simulated.in_group();
        }
        let request = robot.sign_request(&simulated, NOW_MS);
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();

        let inbound = robot.decode(&HeaderList(&headers), request.body.as_bytes(), NOW_MS);

        match inbound {
            Ok(Inbound::Message { message, reply }) => {
                prop_assert_eq!(message.message_id, message_id);
                prop_assert_eq!(message.content, Content::Text(text.trim().to_owned()));
                prop_assert_eq!(reply.is_group(), group);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn allowed_webhooks_are_always_https_on_the_listed_host(url in "\\PC{0,64}") {
        if webhook_host_allowed(&url, &["oapi.dingtalk.com"]) {
            let lower = url.to_ascii_lowercase();
            prop_assert!(
                lower.starts_with("https://oapi.dingtalk.com/")
                    || lower.starts_with("https://oapi.dingtalk.com:443/")
            );
        }
    }

    #[test]
    fn every_part_fits(answer in "(\\PC{0,80}\n{0,2}){0,80}") {
        for part in PARTS.parts(&answer) {
            prop_assert!(part.len() <= PART_BYTES);
        }
    }
}
