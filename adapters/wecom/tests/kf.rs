//! Customer service: `kf/sync_msg` responses mapped item by item (origins 3, 4, 5), and the
//! pull that follows a notice.

use botgate_contract::{AdapterError, Content, InboundMessage, Platform};
use botgate_wecom::kf::{KfItem, SyncMsgRequest, SyncMsgResponse};
use botgate_wecom::KfNotice;

const ACCOUNT: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";
const CUSTOMER: &str = "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw";

/// A response in the shape of the official sample (inbound.md §4.2), one item of each kind,
/// with fields the adapter does not read (`wechat_channels`, `image.media_id`, …).
const RESPONSE: &str = r#"{
  "errcode": 0, "errmsg": "ok", "next_cursor": "4gw7MepFLfgF2VC5npN", "has_more": 0,
  "msg_list": [
    {"msgid": "from_msgid_4622416642169452483", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
     "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478585, "origin": 3,
     "servicer_userid": "Zhangsan", "msgtype": "text", "text": {"content": "hello", "menu_id": "101"}},
    {"msgid": "m_image", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
     "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478586, "origin": 3,
     "msgtype": "image", "image": {"media_id": "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"}},
    {"msgid": "m_voice", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
     "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478587, "origin": 3,
     "msgtype": "voice", "voice": {"media_id": "MEDIA_ID"}},
    {"msgid": "m_enter", "send_time": 1615478588, "origin": 4, "msgtype": "event",
     "event": {"event_type": "enter_session", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
       "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "scene": "123", "scene_param": "abc",
       "welcome_code": "aaaaaa", "wechat_channels": {"nickname": "xxx", "scene": 1}}},
    {"msgid": "m_fail", "send_time": 1615478589, "origin": 4, "msgtype": "event",
     "event": {"event_type": "msg_send_fail", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
       "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "fail_msgid": "FAIL_MSGID", "fail_type": 4}},
    {"msgid": "m_servicer", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
     "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478590, "origin": 5,
     "servicer_userid": "Zhangsan", "msgtype": "text", "text": {"content": "我来处理"}},
    {"msgid": "m_status", "send_time": 1615478591, "origin": 4, "msgtype": "event",
     "event": {"event_type": "servicer_status_change", "servicer_userid": "Zhangsan", "status": 1}}
  ]
}"#;

fn items(body: &str) -> Vec<Result<KfItem, AdapterError>> {
    SyncMsgResponse::parse(body.as_bytes())
        .expect("a response")
        .items()
        .collect()
}

fn customer(msgid: &str, content: Content) -> Result<KfItem, AdapterError> {
    Ok(KfItem::Customer {
        message: InboundMessage {
            platform: Platform::Wecom,
            conversation: CUSTOMER.into(),
            sender: CUSTOMER.into(),
            message_id: msgid.into(),
            content,
        },
        open_kfid: ACCOUNT.into(),
    })
}

#[test]
fn a_response_of_every_origin_maps_item_by_item() {
    let response = SyncMsgResponse::parse(RESPONSE.as_bytes()).unwrap();

    let items: Vec<_> = response.items().collect();

    assert!(response.succeeded());
    assert!(!response.more_to_pull());
    assert_eq!(response.next_cursor, "4gw7MepFLfgF2VC5npN");
    assert_eq!(
        items,
        vec![
            customer(
                "from_msgid_4622416642169452483",
                Content::Text("hello".into())
            ),
            customer(
                "m_image",
                Content::Ignored {
                    kind: "image".into()
                }
            ),
            customer("m_voice", Content::Voice { recognition: None }),
            Ok(KfItem::EnterSession {
                external_userid: CUSTOMER.into(),
                open_kfid: ACCOUNT.into(),
                welcome_code: Some("aaaaaa".into()),
                scene: Some("123".into()),
            }),
            Ok(KfItem::SendFailed {
                fail_msgid: "FAIL_MSGID".into(),
                fail_type: 4,
            }),
            Ok(KfItem::Servicer {
                msgid: "m_servicer".into(),
                open_kfid: ACCOUNT.into(),
                external_userid: CUSTOMER.into(),
                servicer_userid: Some("Zhangsan".into()),
            }),
            Ok(KfItem::Other {
                kind: "servicer_status_change".into()
            }),
        ]
    );
}

#[test]
fn an_empty_list_with_has_more_still_asks_for_another_pull() {
    let response = SyncMsgResponse::parse(
        br#"{"errcode":0,"errmsg":"ok","next_cursor":"c9","has_more":1,"msg_list":[]}"#,
    )
    .unwrap();

    assert!(response.more_to_pull());
    assert_eq!(response.items().count(), 0);
    assert_eq!(response.next_cursor, "c9");
}

#[test]
fn enter_session_without_welcome_code_or_scene_and_ids_on_the_item() {
    let body = r#"{"msg_list":[{"msgid":"e1","origin":4,"msgtype":"event","open_kfid":"wk1","external_userid":"wm1",
        "event":{"event_type":"enter_session","welcome_code":""}}]}"#;

    assert_eq!(
        items(body),
        vec![Ok(KfItem::EnterSession {
            external_userid: "wm1".into(),
            open_kfid: "wk1".into(),
            welcome_code: None,
            scene: None,
        })]
    );
}

#[test]
fn a_send_failure_without_a_type_is_of_unknown_type() {
    let body = r#"{"msg_list":[{"msgid":"f1","origin":4,"msgtype":"event","event":{"event_type":"msg_send_fail","fail_msgid":"x"}}]}"#;

    assert_eq!(
        items(body),
        vec![Ok(KfItem::SendFailed {
            fail_msgid: "x".into(),
            fail_type: 0
        })]
    );
}

#[test]
fn a_bad_item_fails_alone_and_the_rest_of_the_batch_maps() {
    let body = r#"{"next_cursor":"c2","has_more":0,"msg_list":[
        {"msgid": 5, "origin": 3, "msgtype": "text", "open_kfid": "wk", "external_userid": "wm", "text": {"content": "x"}},
        {"msgid": "a", "origin": "3"},
        {"msgid": "b", "msgtype": "text"},
        {"msgid": "c", "origin": 3, "msgtype": "text", "open_kfid": "wk", "external_userid": "wm"},
        {"msgid": "d", "origin": 3, "msgtype": "text", "open_kfid": "wk", "text": {"content": "x"}},
        {"msgid": "e", "origin": 4, "msgtype": "event"},
        {"msgid": "f", "origin": 4, "msgtype": "event", "event": {"event_type": "enter_session", "open_kfid": "wk"}},
        {"msgid": "g", "origin": 4, "msgtype": "event", "event": {"event_type": "msg_send_fail", "fail_type": "4", "fail_msgid": "x"}},
        "not an object",
        {"msgid": "ok", "origin": 3, "msgtype": "text", "open_kfid": "wk", "external_userid": "wm", "text": {"content": "fine"}},
        {"msgid": "h", "origin": 9}
    ]}"#;

    let items = items(body);

    assert_eq!(items.len(), 11);
    for (index, item) in items[..9].iter().enumerate() {
        assert!(
            matches!(item, Err(AdapterError::Malformed(_))),
            "item {index}: {item:?}"
        );
    }
    assert!(
        matches!(&items[9], Ok(KfItem::Customer { message, .. }) if message.message_id == "ok")
    );
    assert_eq!(
        items[10],
        Ok(KfItem::Other {
            kind: "origin:9".into()
        })
    );
}

#[test]
fn a_response_with_wrong_top_level_types_is_malformed() {
    let bodies = [
        &br#"{"has_more": true}"#[..],
        br#"{"msg_list": {}}"#,
        br#"{"errcode": "0"}"#,
        br#"[]"#,
        b"",
    ];

    for body in bodies {
        let result = SyncMsgResponse::parse(body);

        assert!(
            matches!(result, Err(AdapterError::Malformed(_))),
            "{result:?}"
        );
    }
}

#[test]
fn the_pull_after_a_notice_carries_its_token_account_and_cursor() {
    let notice = KfNotice {
        token: "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR".into(),
        open_kfid: Some("wkxxxxxxx".into()),
    };

    let request = serde_json::to_value(SyncMsgRequest::after_notice(
        &notice,
        Some("4gw7MepFLfgF2VC5npN"),
    ))
    .unwrap();

    assert_eq!(
        request,
        serde_json::json!({
            "cursor": "4gw7MepFLfgF2VC5npN",
            "token": "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
            "limit": 1000,
            "open_kfid": "wkxxxxxxx"
        })
    );
}
