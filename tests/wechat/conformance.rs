//! The WeChat adapter passes the conformance kit every platform adapter must pass.

use botgate_testkit::conformance::{check, wxbiz_tampered, Fixture, Request};
use botgate_wechat::{CallbackMode, WechatAccount};
use botgate_wxcrypt::{signature, EncodingAesKey};

use crate::harness::{msg_id, text, AES_KEY, APP_ID, TOKEN};

fn account() -> WechatAccount {
    WechatAccount::new(TOKEN, Some(EncodingAesKey::parse(AES_KEY).unwrap()), APP_ID)
}

#[test]
fn the_wechat_adapter_passes_the_conformance_kit() {
    let account = account();
    let now = botgate::clock::unix_secs();
    let xml = text(msg_id(1), "你好").to_xml("o-conformance", "gh_x", now);
    let sign = |timestamp: u64, nonce: &str, random: u8| {
        let signed = account
            .sign_request(CallbackMode::Safe, &xml, timestamp, nonce, &[random; 16])
            .unwrap();
        Request::post(signed.query, Vec::new(), signed.body.into_bytes())
    };
    let valid = sign(now, "1357", 1);
    let echo_signature = signature(&[TOKEN, &now.to_string(), "2468"]);
    let opener = account.clone();

    check(
        &account,
        &Fixture {
            now_secs: now,
            retry: sign(now + 5, "9753", 2),
            tampered: wxbiz_tampered(&valid, now, "1357"),
            required: vec!["msg_signature", "timestamp", "nonce"],
            handshake: Some((
                Request {
                    method: botgate_contract::Method::Get,
                    query: format!(
                        "signature={echo_signature}&timestamp={now}&nonce=2468&echostr=4375120948345356249"
                    ),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
                "4375120948345356249".to_owned(),
            )),
            open_reply: Some(Box::new(move |body| opener.open_reply(body).ok().flatten())),
            valid,
        },
    );
}
