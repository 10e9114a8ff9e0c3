//! The other side of the protocol: callbacks as WeCom sends them, and the customer-service API's
//! pull responses. Used by `botgate simulate wecom`, the end-to-end tests and the benchmark.

use crate::kf::{KfMessage, KfText, SyncMsgResponse, ORIGIN_CUSTOMER};
use crate::{BodyFormat, WecomApp};

/// A callback as WeCom would encrypt it; rendered as WeCom's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedCallback {
    /// A member (`user`, a UserID) wrote to the app `agent_id`.
    Text {
        user: String,
        agent_id: u64,
        msg_id: u64,
        content: String,
    },
    /// A member acted on the app (`enter_agent`, `click` with a menu key, …).
    Event {
        user: String,
        agent_id: u64,
        event: String,
        event_key: String,
    },
    /// Customer service has news (`kf_msg_or_event`).
    KfNotice {
        token: String,
        open_kfid: Option<String>,
    },
}

/// One signed, encrypted callback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The query string, without `?`.
    pub query: String,
    pub body: String,
}

impl SimulatedCallback {
    /// The plaintext WeCom would encrypt, addressed to `corp_id`, laid out as WeCom's samples
    /// are (CDATA strings, bare numbers, `\n` between fields; a notice on one line).
    pub fn to_xml(&self, corp_id: &str, create_time: u64) -> String {
        let to = cdata(corp_id);
        match self {
            SimulatedCallback::Text {
                user,
                agent_id,
                msg_id,
                content,
            } => format!(
                "<xml><ToUserName>{to}</ToUserName>\n<FromUserName>{}</FromUserName>\n<CreateTime>{create_time}</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content>{}</Content>\n<MsgId>{msg_id}</MsgId>\n<AgentID>{agent_id}</AgentID>\n</xml>",
                cdata(user),
                cdata(content)
            ),
            SimulatedCallback::Event {
                user,
                agent_id,
                event,
                event_key,
            } => format!(
                "<xml><ToUserName>{to}</ToUserName>\n<FromUserName>{}</FromUserName>\n<CreateTime>{create_time}</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n<AgentID>{agent_id}</AgentID>\n<Event>{}</Event>\n<EventKey>{}</EventKey>\n</xml>",
                cdata(user),
                cdata(event),
                cdata(event_key)
            ),
            SimulatedCallback::KfNotice { token, open_kfid } => {
                let account = open_kfid
                    .as_deref()
                    .map(|id| format!("<OpenKfId>{}</OpenKfId>", cdata(id)))
                    .unwrap_or_default();
                format!(
                    "<xml><ToUserName>{to}</ToUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token>{}</Token>{account}</xml>",
                    cdata(token)
                )
            }
        }
    }

    /// The app the callback concerns, which the envelope repeats; none for a kf notice.
    pub fn agent_id(&self) -> Option<u64> {
        match self {
            SimulatedCallback::Text { agent_id, .. }
            | SimulatedCallback::Event { agent_id, .. } => Some(*agent_id),
            SimulatedCallback::KfNotice { .. } => None,
        }
    }
}

fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

impl WecomApp {
    /// The query of a GET URL verification whose encrypted echostr decrypts to `echo`.
    pub fn sign_verification(
        &self,
        echo: &str,
        timestamp: u64,
        nonce: &str,
        random: &[u8; 16],
    ) -> String {
        let timestamp = timestamp.to_string();
        let echostr = self.crypt.encrypt(echo.as_bytes(), random);
        let msg_signature = self.crypt.msg_signature(&timestamp, nonce, &echostr);
        form_urlencoded::Serializer::new(String::new())
            .append_pair("msg_signature", &msg_signature)
            .append_pair("timestamp", &timestamp)
            .append_pair("nonce", nonce)
            .append_pair("echostr", &echostr)
            .finish()
    }

    /// A callback as WeCom sends it, created at `timestamp`, in the XML format. `timestamp` is
    /// what the gateway compares with its clock: pass the current Unix time.
    pub fn sign_callback(
        &self,
        callback: &SimulatedCallback,
        timestamp: u64,
        nonce: &str,
        random: &[u8; 16],
    ) -> SignedRequest {
        let xml = callback.to_xml(&self.corp_id, timestamp);
        self.sign_plaintext(
            BodyFormat::Xml,
            &xml,
            callback.agent_id(),
            timestamp,
            nonce,
            random,
        )
    }

    /// Encrypts any plaintext (tests send broken ones on purpose) and wraps it in `format`'s
    /// envelope: `<xml><ToUserName/><Encrypt/><AgentID/></xml>`, or the JSON of Tencent's
    /// sample, `{"tousername", "encrypt", "agentid"}`.
    pub fn sign_plaintext(
        &self,
        format: BodyFormat,
        plaintext: &str,
        agent_id: Option<u64>,
        timestamp: u64,
        nonce: &str,
        random: &[u8; 16],
    ) -> SignedRequest {
        let timestamp = timestamp.to_string();
        let encrypt = self.crypt.encrypt(plaintext.as_bytes(), random);
        let msg_signature = self.crypt.msg_signature(&timestamp, nonce, &encrypt);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("msg_signature", &msg_signature)
            .append_pair("timestamp", &timestamp)
            .append_pair("nonce", nonce)
            .finish();
        let body = match format {
            BodyFormat::Xml => {
                let agent = agent_id
                    .map(|id| format!("<AgentID><![CDATA[{id}]]></AgentID>"))
                    .unwrap_or_default();
                format!(
                    "<xml><ToUserName>{}</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>{agent}</xml>",
                    cdata(&self.corp_id)
                )
            }
            BodyFormat::Json => {
                let mut envelope = serde_json::json!({
                    "tousername": self.corp_id,
                    "encrypt": encrypt,
                });
                if let Some(id) = agent_id {
                    envelope["agentid"] = id.into();
                }
                envelope.to_string()
            }
        };
        SignedRequest { query, body }
    }
}

/// A customer's text message as `kf/sync_msg` lists it.
pub fn kf_customer_text(
    msgid: &str,
    open_kfid: &str,
    external_userid: &str,
    send_time: u64,
    content: &str,
) -> KfMessage {
    KfMessage {
        msgid: Some(msgid.to_owned()),
        open_kfid: Some(open_kfid.to_owned()),
        external_userid: Some(external_userid.to_owned()),
        send_time: Some(send_time),
        origin: Some(ORIGIN_CUSTOMER),
        msgtype: Some("text".to_owned()),
        text: Some(KfText {
            content: content.to_owned(),
            menu_id: None,
        }),
        ..KfMessage::default()
    }
}

/// A successful `kf/sync_msg` response body listing `items`.
pub fn sync_msg_response(items: &[KfMessage], next_cursor: &str, has_more: bool) -> String {
    let response = SyncMsgResponse {
        errcode: 0,
        errmsg: "ok".to_owned(),
        next_cursor: next_cursor.to_owned(),
        has_more: u32::from(has_more),
        msg_list: items
            .iter()
            // A plain struct of strings and integers always serialises.
            .filter_map(|item| serde_json::to_value(item).ok())
            .collect(),
    };
    serde_json::to_string(&response).unwrap_or_default()
}
