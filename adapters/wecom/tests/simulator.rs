//! The simulator's requests round-trip through `WecomApp` and the platform-neutral `Adapter`.

mod support;

use botgate_contract::{
    Adapter, AdapterError, Content, HeaderList, Inbound, Method, Outcome, Platform, RawRequest,
    Response,
};
use botgate_wecom::kf::{KfItem, SyncMsgResponse};
use botgate_wecom::simulator::{kf_customer_text, sync_msg_response};
use botgate_wecom::{BodyFormat, Decoded, KfNotice, MessageKind, SimulatedCallback, WecomApp};
use support::*;

const NOW: u64 = 1_700_000_000;

fn accept(
    app: &WecomApp,
    method: Method,
    query: &str,
    body: &[u8],
) -> Result<Inbound<(), KfNotice>, AdapterError> {
    let headers = HeaderList(&[]);
    app.accept(&RawRequest {
        method,
        query,
        headers: &headers,
        body,
        now_secs: NOW,
    })
}

fn empty_ok() -> Response {
    Response {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: String::new(),
    }
}

#[test]
fn a_text_message_round_trips_through_the_adapter() {
    let app = new_app();
    let message = SimulatedCallback::Text {
        user: "ChenJiaShun".into(),
        agent_id: 1000002,
        msg_id: 6054768590064713728,
        content: " 问]]>题 ".into(),
    };

    let request = app.sign_callback(&message, NOW, "nonce 1+", &[7; 16]);
    let inbound = accept(&app, Method::Post, &request.query, request.body.as_bytes()).unwrap();

    match inbound {
        Inbound::Message { message, reply: () } => {
            assert_eq!(message.platform, Platform::Wecom);
            assert_eq!(message.conversation, "ChenJiaShun");
            assert_eq!(message.sender, "ChenJiaShun");
            assert_eq!(message.message_id, "6054768590064713728");
            assert_eq!(message.content, Content::Text(" 问]]>题 ".into()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn events_round_trip_with_their_content() {
    let app = doc_app();
    let cases = [
        ("enter_agent", "", Content::FirstContact),
        ("click", "#help", Content::Text("#help".into())),
        ("unsubscribe", "", Content::Left),
    ];

    for (event, key, expected) in cases {
        let callback = SimulatedCallback::Event {
            user: "zhang".into(),
            agent_id: 5,
            event: event.into(),
            event_key: key.into(),
        };
        let request = app.sign_callback(&callback, NOW, "n", &[1; 16]);

        let decoded = app
            .decode(&request.query, request.body.as_bytes(), NOW)
            .unwrap();

        match decoded {
            Decoded::Message(app_message) => {
                assert_eq!(app_message.message.content, expected, "{event}");
                assert_eq!(app_message.kind, MessageKind::Event);
                assert_eq!(app_message.agent_id, Some(5));
                assert_eq!(
                    app_message.message.message_id,
                    format!("ev:zhang:{NOW}:{event}:{key}")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_kf_notice_round_trips_as_a_notice_with_and_without_account() {
    let app = doc_app();
    for open_kfid in [Some("wk_1".to_owned()), None] {
        let callback = SimulatedCallback::KfNotice {
            token: "ENC_token".into(),
            open_kfid: open_kfid.clone(),
        };
        let request = app.sign_callback(&callback, NOW, "n", &[2; 16]);

        let inbound = accept(&app, Method::Post, &request.query, request.body.as_bytes());

        assert_eq!(
            inbound,
            Ok(Inbound::Notice(KfNotice {
                token: "ENC_token".into(),
                open_kfid
            }))
        );
        assert!(!request.body.contains("AgentID"), "{}", request.body);
    }
}

#[test]
fn a_json_format_callback_round_trips() {
    let app = new_app();
    let plaintext = r#"{"ToUserName":"ww1436e0e65a779aee","FromUserName":"mycreate","CreateTime":1409659813,"MsgType":"text","Content":"hello","MsgId":4561255354251345929,"AgentID":218}"#;

    let request = app.sign_plaintext(BodyFormat::Json, plaintext, Some(218), NOW, "n", &[4; 16]);
    let decoded = app
        .decode(&request.query, request.body.as_bytes(), NOW)
        .unwrap();

    assert!(request.body.starts_with("{\""), "{}", request.body);
    match decoded {
        Decoded::Message(message) => {
            assert_eq!(message.message.content, Content::Text("hello".into()));
            assert_eq!(message.message.message_id, "4561255354251345929");
            assert_eq!(message.agent_id, Some(218));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn url_verification_round_trips_through_the_adapter() {
    let app = py_app();
    let query = app.sign_verification("5927782489442352469", NOW, "437374425", &[9; 16]);

    let inbound = accept(&app, Method::Get, &query, b"");

    assert_eq!(
        inbound,
        Ok(Inbound::Handshake("5927782489442352469".into()))
    );
}

#[test]
fn other_methods_are_refused() {
    let result = accept(&doc_app(), Method::Other, TV9_QUERY, tv9_body().as_bytes());

    assert!(matches!(result, Err(AdapterError::Malformed(_))));
}

#[test]
fn every_answer_is_an_empty_200() {
    let app = doc_app();

    assert_eq!(app.platform(), Platform::Wecom);
    assert_eq!(app.render(&(), "an answer", NOW, &[0; 16]), empty_ok());
    assert_eq!(app.acknowledge(Outcome::Queued { job: "j1" }), empty_ok());
    assert_eq!(app.acknowledge(Outcome::Duplicate), empty_ok());
    assert_eq!(app.acknowledge(Outcome::Ignored), empty_ok());
}

#[test]
fn a_simulated_pull_response_reads_back() {
    let items = [
        kf_customer_text("m1", "wk1", "wm1", NOW, "你好"),
        kf_customer_text("m2", "wk1", "wm2", NOW + 1, "again"),
    ];

    let body = sync_msg_response(&items, "c1", true);
    let response = SyncMsgResponse::parse(body.as_bytes()).unwrap();
    let mapped: Vec<_> = response.items().collect::<Result<_, _>>().unwrap();

    assert!(response.more_to_pull());
    assert_eq!(response.next_cursor, "c1");
    assert_eq!(mapped.len(), 2);
    assert!(matches!(&mapped[0], KfItem::Customer { message, open_kfid }
        if message.content == Content::Text("你好".into()) && message.sender == "wm1" && open_kfid == "wk1"));
}

#[test]
fn the_debug_of_an_app_shows_no_secret() {
    let shown = format!("{:?}", doc_app());

    assert!(!shown.contains(DOC_TOKEN), "{shown}");
    assert!(shown.contains(DOC_CORP_ID), "{shown}");
}
