//! `DingtalkRobot`: one HTTP-mode robot's callback checks, in the order that keeps work away
//! from forgers: size, headers, signature, window, then the body.

use std::fmt;
use std::time::Duration;

use botgate_contract::{AdapterError, Headers};

use crate::inbound::{map_robot_message, RobotInbound};
use crate::signature::{check_window, parse_millis, sign, sign_matches};
use crate::wire::{RobotMessage, MAX_BODY_BYTES};

/// DingTalk refuses requests more than an hour from its clock ("相差1小时以上，则认为是非法的
/// 请求", inbound.md §6.1), so it signs in that window and so do we.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(3600);

/// The narrowest window accepted: the gateway's clock arrives in whole seconds (up to 999 ms
/// behind DingTalk's millisecond stamp) and real clocks drift by seconds.
pub const MIN_TIMESTAMP_WINDOW: Duration = Duration::from_secs(60);

/// The header carrying the signing time, Unix milliseconds.
pub const TIMESTAMP_HEADER: &str = "timestamp";
/// The header carrying `base64(HMAC-SHA256(appSecret, timestamp + "\n" + appSecret))`.
pub const SIGN_HEADER: &str = "sign";

/// One enterprise-internal robot in HTTP mode (消息接收模式 = HTTP), keyed by its AppSecret.
#[derive(Clone)]
pub struct DingtalkRobot {
    app_secret: String,
    robot_code: Option<String>,
    timestamp_window_ms: u64,
}

impl DingtalkRobot {
    pub fn new(app_secret: &str) -> Self {
        Self {
            app_secret: app_secret.to_owned(),
            robot_code: None,
            timestamp_window_ms: millis(DEFAULT_TIMESTAMP_WINDOW),
        }
    }

    /// Accepts requests whose `timestamp` is at most `window` from now, in either direction.
    /// Narrower than [`MIN_TIMESTAMP_WINDOW`] is raised to it.
    pub fn timestamp_window(mut self, window: Duration) -> Self {
        self.timestamp_window_ms = millis(window.max(MIN_TIMESTAMP_WINDOW));
        self
    }

    /// Refuses messages whose `robotCode` is not `robot_code` (the AppKey) with
    /// [`AdapterError::WrongReceiver`]. The signature covers only the timestamp, never the
    /// body, so this is the one check that ties a body to this robot.
    pub fn robot_code(mut self, robot_code: &str) -> Self {
        self.robot_code = Some(robot_code.to_owned());
        self
    }

    /// The signature DingTalk sends with a request signed at `timestamp_ms`.
    pub fn sign(&self, timestamp_ms: u64) -> String {
        sign(&self.app_secret, &timestamp_ms.to_string())
    }

    /// Verifies and decodes one callback received at `now_ms` (Unix milliseconds): a message to
    /// answer, or [`Inbound::Ignore`](botgate_contract::Inbound::Ignore) for a group message that does not @-mention the robot.
    ///
    /// The signature is checked before the window, so only an authentic request is ever refused
    /// as stale, and the body is read only after both pass.
    pub fn decode(
        &self,
        headers: &dyn Headers,
        body: &[u8],
        now_ms: u64,
    ) -> Result<RobotInbound, AdapterError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(AdapterError::TooLarge);
        }
        let timestamp = headers
            .header(TIMESTAMP_HEADER)
            .ok_or(AdapterError::MissingParameter(TIMESTAMP_HEADER))?;
        let sign = headers
            .header(SIGN_HEADER)
            .ok_or(AdapterError::MissingParameter(SIGN_HEADER))?;
        if !sign_matches(&self.app_secret, timestamp, sign) {
            return Err(AdapterError::BadSignature);
        }
        check_window(parse_millis(timestamp)?, now_ms, self.timestamp_window_ms)?;
        let message = RobotMessage::parse(body)?;
        if let Some(expected) = &self.robot_code {
            if message.robot_code.as_deref() != Some(expected.as_str()) {
                return Err(AdapterError::WrongReceiver);
            }
        }
        map_robot_message(message)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Debug for DingtalkRobot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingtalkRobot")
            .field("app_secret", &"<redacted>")
            .field("robot_code", &self.robot_code)
            .field("timestamp_window_ms", &self.timestamp_window_ms)
            .finish()
    }
}
