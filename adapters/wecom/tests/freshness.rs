//! The timestamp window: GET verification and POSTs are refused as stale when their timestamp
//! is too far from now, in either direction, only once the signature checks out.

mod support;

use std::time::Duration;

use botgate_contract::AdapterError;
use botgate_wecom::{WecomApp, DEFAULT_TIMESTAMP_WINDOW, MIN_TIMESTAMP_WINDOW};
use support::*;

const WINDOW: i64 = DEFAULT_TIMESTAMP_WINDOW.as_secs() as i64;

/// TV-8 (GET), TV-9 (POST) and G2 (kf notice), each received `skew` seconds after its timestamp.
fn outcomes(app: &WecomApp, skew: i64) -> [Result<(), AdapterError>; 3] {
    let now = |timestamp: u64| timestamp.checked_add_signed(skew).expect("in range");
    [
        app.verify_url(TV8_QUERY, now(TV8_NOW)).map(drop),
        app.decode(TV9_QUERY, tv9_body().as_bytes(), now(TV9_NOW))
            .map(drop),
        app.decode(&g2_query(), g2_body().as_bytes(), now(G2_TIMESTAMP))
            .map(drop),
    ]
}

#[test]
fn requests_inside_the_window_are_accepted_in_either_direction() {
    let app = doc_app();

    for skew in [-WINDOW, -1, 0, 1, WINDOW] {
        assert_eq!(
            outcomes(&app, skew),
            [Ok(()), Ok(()), Ok(())],
            "skew {skew}"
        );
    }
}

#[test]
fn requests_outside_the_window_are_stale_and_carry_their_skew() {
    let app = doc_app();

    for skew in [WINDOW + 1, -(WINDOW + 1), 86_400, -86_400] {
        let stale = Err(AdapterError::StaleTimestamp { skew_secs: skew });

        assert_eq!(
            outcomes(&app, skew),
            [stale.clone(), stale.clone(), stale],
            "skew {skew}"
        );
    }
}

#[test]
fn a_stale_request_with_a_bad_signature_is_a_bad_signature() {
    let app = doc_app();
    let forged = replace_once(TV9_QUERY, "msg_signature=4777", "msg_signature=4778");

    let result = app.decode(&forged, tv9_body().as_bytes(), TV9_NOW + 86_400);

    assert_eq!(result, Err(AdapterError::BadSignature));
}

#[test]
fn the_window_can_be_set_but_never_below_the_minimum() {
    let wide = doc_app().timestamp_window(Duration::from_secs(3_600));
    let narrow = doc_app().timestamp_window(Duration::from_secs(1));
    let minimum = MIN_TIMESTAMP_WINDOW.as_secs() as i64;

    assert_eq!(outcomes(&wide, 3_600), [Ok(()), Ok(()), Ok(())]);
    assert_eq!(outcomes(&narrow, minimum), [Ok(()), Ok(()), Ok(())]);
    assert_eq!(
        outcomes(&narrow, minimum + 1)[1],
        Err(AdapterError::StaleTimestamp {
            skew_secs: minimum + 1
        })
    );
}

#[test]
fn extreme_clocks_report_a_saturated_skew_instead_of_overflowing() {
    let app = doc_app();

    let result = app.verify_url(TV8_QUERY, u64::MAX);

    assert_eq!(
        result,
        Err(AdapterError::StaleTimestamp {
            skew_secs: i64::MAX
        })
    );
}
