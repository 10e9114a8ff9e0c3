//! The signed reply envelopes: XML for WeChat and WeCom, JSON for DingTalk.

use std::fmt::Write as _;

use crate::crypt::WxCrypt;
use crate::signature::signature;

impl WxCrypt {
    /// The passive-reply envelope of inbound.md §1.5, on one line:
    /// `<xml><Encrypt><![CDATA[..]]></Encrypt><MsgSignature><![CDATA[..]]></MsgSignature><TimeStamp>ts</TimeStamp><Nonce><![CDATA[..]]></Nonce></xml>`
    /// with `MsgSignature = signature([token, timestamp, nonce, encrypt])`.
    pub fn encrypt_reply_xml(
        &self,
        msg: &[u8],
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
    ) -> String {
        let encrypt = self.encrypt(msg, random);
        let msg_signature = signature(&[&self.token, timestamp, nonce, &encrypt]);

        let mut xml = String::with_capacity(160 + encrypt.len() + timestamp.len() + nonce.len());
        xml.push_str("<xml><Encrypt><![CDATA[");
        xml.push_str(&encrypt);
        xml.push_str("]]></Encrypt><MsgSignature><![CDATA[");
        xml.push_str(&msg_signature);
        xml.push_str("]]></MsgSignature><TimeStamp>");
        push_xml_text(&mut xml, timestamp);
        xml.push_str("</TimeStamp><Nonce>");
        push_cdata(&mut xml, nonce);
        xml.push_str("</Nonce></xml>");
        xml
    }

    /// DingTalk's reply (inbound.md §7):
    /// `{"msg_signature":"..","timeStamp":"..","nonce":"..","encrypt":".."}`, timeStamp a JSON string.
    pub fn encrypt_reply_json(
        &self,
        msg: &[u8],
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
    ) -> String {
        let encrypt = self.encrypt(msg, random);
        let msg_signature = signature(&[&self.token, timestamp, nonce, &encrypt]);

        let mut json = String::with_capacity(96 + encrypt.len() + timestamp.len() + nonce.len());
        json.push_str("{\"msg_signature\":\"");
        json.push_str(&msg_signature);
        json.push_str("\",\"timeStamp\":");
        push_json_string(&mut json, timestamp);
        json.push_str(",\"nonce\":");
        push_json_string(&mut json, nonce);
        json.push_str(",\"encrypt\":\"");
        json.push_str(&encrypt);
        json.push_str("\"}");
        json
    }
}

// The nonce is echoed from the request's query string, which the sender controls, so it must
// not be able to close the CDATA section; splitting `]]>` keeps the parsed value identical.
fn push_cdata(out: &mut String, value: &str) {
    out.push_str("<![CDATA[");
    let mut pieces = value.split("]]>");
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for piece in pieces {
        out.push_str("]]]]><![CDATA[>");
        out.push_str(piece);
    }
    out.push_str("]]>");
}

// The timestamp is ours in practice, but escaping keeps the envelope well-formed regardless.
fn push_xml_text(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
