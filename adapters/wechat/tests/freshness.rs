//! The timestamp window: GET verification, plaintext and encrypted POSTs are refused as stale
//! when their timestamp is too far from now, in either direction, and the skew is reported.

mod support;

use std::time::Duration;

use botgate_contract::AdapterError;
use botgate_wechat::{WechatAccount, DEFAULT_TIMESTAMP_WINDOW, MIN_TIMESTAMP_WINDOW};
use botgate_wxcrypt::signature;
use support::*;

const WINDOW: i64 = DEFAULT_TIMESTAMP_WINDOW.as_secs() as i64;

fn tv2_query() -> String {
    format!("signature={TV2_SIGNATURE}&timestamp={TV2_TIMESTAMP}&nonce={TV2_NONCE}&openid=oUser")
}

/// The three signed entry points, each received `skew` seconds after its timestamp.
fn outcomes(account: &WechatAccount, skew: i64) -> [Result<(), AdapterError>; 3] {
    let now = |timestamp: u64| timestamp.checked_add_signed(skew).expect("in range");
    let plain_body = text_message("oUser", "gh_acct", "hi", 1);
    [
        account.verify_url(TV1_QUERY, now(TV1_NOW)).map(drop),
        account
            .decode(&tv2_query(), plain_body.as_bytes(), now(at(TV2_TIMESTAMP)))
            .map(drop),
        account
            .decode(TV4_QUERY, tv4_body().as_bytes(), now(TV4_NOW))
            .map(drop),
    ]
}

#[test]
fn requests_inside_the_window_are_accepted_in_either_direction() {
    let account = tv4_account();

    for skew in [-WINDOW, -1, 0, 1, WINDOW] {
        let results = outcomes(&account, skew);

        assert_eq!(results, [Ok(()), Ok(()), Ok(())], "skew {skew}");
    }
}

#[test]
fn requests_outside_the_window_are_stale_and_carry_their_skew() {
    let account = tv4_account();

    for skew in [WINDOW + 1, -(WINDOW + 1), 86_400, -86_400] {
        let results = outcomes(&account, skew);

        let stale = Err(AdapterError::StaleTimestamp { skew_secs: skew });
        assert_eq!(
            results,
            [stale.clone(), stale.clone(), stale],
            "skew {skew}"
        );
    }
}

#[test]
fn the_window_is_configurable_but_never_narrower_than_wechat_retries_need() {
    let minute = tv4_account().timestamp_window(Duration::from_secs(60));
    let too_narrow = tv4_account().timestamp_window(Duration::from_secs(1));
    let floor = MIN_TIMESTAMP_WINDOW.as_secs() as i64;

    let minute_inside = outcomes(&minute, -60);
    let minute_outside = outcomes(&minute, 61);
    let floor_inside = outcomes(&too_narrow, floor);
    let floor_outside = outcomes(&too_narrow, -(floor + 1));

    assert_eq!(minute_inside, [Ok(()), Ok(()), Ok(())]);
    assert!(minute_outside
        .iter()
        .all(|result| *result == Err(AdapterError::StaleTimestamp { skew_secs: 61 })));
    assert_eq!(floor_inside, [Ok(()), Ok(()), Ok(())]);
    assert!(floor_outside.iter().all(|result| *result
        == Err(AdapterError::StaleTimestamp {
            skew_secs: -(floor + 1)
        })));
}

#[test]
fn the_signature_is_checked_before_the_window() {
    let account = tv4_account();
    let forged = replace_once(TV4_QUERY, "msg_signature=6c12", "msg_signature=6c13");

    let result = account.decode(&forged, tv4_body().as_bytes(), TV4_NOW + 86_400);

    assert_eq!(result, Err(AdapterError::BadSignature));
}

#[test]
fn timestamps_that_are_not_seconds_or_absurdly_far_are_refused_without_panicking() {
    let account = doc_plain_account();
    let signed = |timestamp: &str| {
        let sig = signature(&[DOC_TOKEN, timestamp, "2"]);
        format!("signature={sig}&timestamp={timestamp}&nonce=2&echostr=e")
    };

    let words = account.verify_url(&signed("soon"), 1);
    let negative = account.verify_url(&signed("-5"), 1);
    let far_future = account.verify_url(&signed(&u64::MAX.to_string()), 0);
    let far_past = account.verify_url(&signed("0"), u64::MAX);

    assert!(matches!(words, Err(AdapterError::Malformed(_))));
    assert!(matches!(negative, Err(AdapterError::Malformed(_))));
    assert_eq!(
        far_future,
        Err(AdapterError::StaleTimestamp {
            skew_secs: i64::MIN
        })
    );
    assert_eq!(
        far_past,
        Err(AdapterError::StaleTimestamp {
            skew_secs: i64::MAX
        })
    );
}
