//! The timestamp window: an hour either way by default, checked in milliseconds, and only once
//! the signature checks out.

mod support;

use std::time::Duration;

use botgate_contract::{Adapter, AdapterError, HeaderList, Inbound, Method, RawRequest};
use botgate_dingtalk::{DingtalkRobot, DEFAULT_TIMESTAMP_WINDOW, MIN_TIMESTAMP_WINDOW};
use support::*;

const HOUR_MS: i64 = 3_600_000;

/// The G3 request received `skew_ms` after it was signed.
fn received_after(robot: &DingtalkRobot, skew_ms: i64) -> Result<(), AdapterError> {
    let now = G3_TIMESTAMP.checked_add_signed(skew_ms).expect("in range");
    decode(robot, &g3_headers(), SAMPLE_BODY, now).map(drop)
}

#[test]
fn the_default_window_is_an_hour() {
    assert_eq!(DEFAULT_TIMESTAMP_WINDOW, Duration::from_secs(3600));
}

#[test]
fn requests_inside_the_window_are_accepted_in_either_direction() {
    for skew in [-HOUR_MS, -1, 0, 1, HOUR_MS] {
        assert_eq!(received_after(&robot(), skew), Ok(()), "skew {skew} ms");
    }
}

#[test]
fn one_millisecond_outside_is_stale_in_either_direction() {
    assert_eq!(
        received_after(&robot(), HOUR_MS + 1),
        Err(AdapterError::StaleTimestamp { skew_secs: 3601 })
    );
    assert_eq!(
        received_after(&robot(), -(HOUR_MS + 1)),
        Err(AdapterError::StaleTimestamp { skew_secs: -3601 })
    );
    assert_eq!(
        received_after(&robot(), 86_400_000),
        Err(AdapterError::StaleTimestamp { skew_secs: 86_400 })
    );
}

#[test]
fn a_stale_request_with_a_bad_signature_is_a_bad_signature() {
    let forged = headers(
        "1577262236757",
        "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CB=",
    );

    let result = decode(&robot(), &forged, SAMPLE_BODY, G3_TIMESTAMP + 86_400_000);

    assert_eq!(result, Err(AdapterError::BadSignature));
}

#[test]
fn the_window_can_be_narrowed_but_not_below_the_minimum() {
    let narrow = robot().timestamp_window(Duration::from_secs(300));
    let tiny = robot().timestamp_window(Duration::ZERO);
    let minimum = MIN_TIMESTAMP_WINDOW.as_millis() as i64;

    assert_eq!(received_after(&narrow, 300_000), Ok(()));
    assert_eq!(
        received_after(&narrow, 300_001),
        Err(AdapterError::StaleTimestamp { skew_secs: 301 })
    );
    assert_eq!(received_after(&tiny, -minimum), Ok(()));
    assert!(received_after(&tiny, minimum + 1).is_err());
}

#[test]
fn the_adapter_compares_in_milliseconds_from_its_whole_seconds() {
    let robot = robot();
    let headers = [("timestamp", "1577262236757"), ("sign", G3_SIGN)];
    let accept = |now_secs: u64| {
        robot.accept(&RawRequest {
            method: Method::Post,
            query: "",
            headers: &HeaderList(&headers),
            body: SAMPLE_BODY.as_bytes(),
            now_secs,
        })
    };

    assert!(matches!(accept(1577262236), Ok(Inbound::Message { .. })));
    assert!(matches!(
        accept(1577262236 + 3600),
        Ok(Inbound::Message { .. })
    ));
    assert_eq!(
        accept(1577262236 + 3601).map(drop),
        Err(AdapterError::StaleTimestamp { skew_secs: 3601 })
    );
}
