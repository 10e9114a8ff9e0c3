//! The HTTP-mode robot passes the conformance kit every adapter must pass.

use botgate_dingtalk::{DingtalkRobot, SimulatedMessage};
use botgate_testkit::conformance::{check, Fixture, Request};

const NOW_SECS: u64 = 1_700_000_000;
const ROBOT_CODE: &str = "dingconformance";

fn request(robot: &DingtalkRobot, message: &SimulatedMessage, timestamp_ms: u64) -> Request {
    let signed = robot.sign_request(message, timestamp_ms);
    Request::post("", signed.headers, signed.body.into_bytes())
}

#[test]
fn the_dingtalk_robot_passes_the_conformance_kit() {
    // With the robot code set, the body's one field tied to this robot is checked too: the
    // signature itself covers no body.
    let robot = DingtalkRobot::new("SECconformance").robot_code(ROBOT_CODE);
    let mut message = SimulatedMessage::new("msgConformance==", "你好").in_group();
    message.robot_code = ROBOT_CODE.to_owned();
    let signed_at = NOW_SECS * 1000;
    let valid = request(&robot, &message, signed_at);
    let sign = robot.sign(signed_at);
    let mut forged = sign.clone().into_bytes();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };

    check(
        &robot,
        &Fixture {
            now_secs: NOW_SECS,
            // DingTalk does not retry robot messages; a redelivery would be signed anew.
            retry: request(&robot, &message, signed_at + 1500),
            tampered: vec![
                (
                    "sign",
                    valid.replaced(&sign, &String::from_utf8(forged).unwrap()),
                ),
                (
                    "timestamp",
                    valid.replaced(&signed_at.to_string(), &(signed_at + 1).to_string()),
                ),
                ("robotCode", valid.replaced(ROBOT_CODE, "dingsomeoneelse")),
            ],
            required: vec!["timestamp", "sign"],
            handshake: None,
            open_reply: None,
            valid,
        },
    );
}
