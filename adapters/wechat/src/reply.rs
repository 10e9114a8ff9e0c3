//! The passive text reply: the XML a WeChat Official Account answers a message with (inbound.md §2.5).

/// The documented limit of a text reply's `Content`, in UTF-8 bytes. Longer answers are split
/// (see [`crate::split_utf8`]) and sent through the customer-service API.
pub const MAX_TEXT_REPLY_BYTES: usize = 2048;

/// Renders a text reply. `to_user` is the user's OpenID (the request's `FromUserName`),
/// `from_user` the account's original id (the request's `ToUserName`).
///
/// The layout is the one WeChat's own samples produce. Values are CDATA sections that survive a
/// `]]>` in the text, and characters XML 1.0 cannot carry at all (most C0 controls) are dropped,
/// because one of them would make WeChat reject the whole reply.
pub fn render_text_reply(
    to_user: &str,
    from_user: &str,
    create_time: u64,
    content: &str,
) -> String {
    let mut xml = String::with_capacity(content.len() + to_user.len() + from_user.len() + 160);
    xml.push_str("<xml>\n<ToUserName>");
    push_cdata(&mut xml, to_user);
    xml.push_str("</ToUserName>\n<FromUserName>");
    push_cdata(&mut xml, from_user);
    xml.push_str("</FromUserName>\n<CreateTime>");
    xml.push_str(&create_time.to_string());
    xml.push_str("</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content>");
    push_cdata(&mut xml, content);
    xml.push_str("</Content>\n</xml>");
    xml
}

/// Appends `text` as CDATA. A `]]>` inside would end the section early, so it is split across two
/// sections: `]]` ends the first, `>` opens the second.
fn push_cdata(xml: &mut String, text: &str) {
    xml.push_str("<![CDATA[");
    let mut rest = text;
    while let Some(at) = rest.find("]]>") {
        push_xml_chars(xml, &rest[..at]);
        xml.push_str("]]]]><![CDATA[>");
        rest = &rest[at + 3..];
    }
    push_xml_chars(xml, rest);
    xml.push_str("]]>");
}

fn push_xml_chars(xml: &mut String, text: &str) {
    xml.extend(text.chars().filter(|&character| is_xml_char(character)));
}

/// XML 1.0 `Char`: tab, newline, carriage return, and everything from U+0020 except the
/// surrogates (which a Rust `char` cannot be) and U+FFFE/U+FFFF.
fn is_xml_char(character: char) -> bool {
    matches!(character, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_layout() {
        let xml = render_text_reply("oUser", "gh_abc", 1_700_000_000, "你好");

        assert_eq!(
            xml,
            "<xml>\n<ToUserName><![CDATA[oUser]]></ToUserName>\n\
             <FromUserName><![CDATA[gh_abc]]></FromUserName>\n\
             <CreateTime>1700000000</CreateTime>\n\
             <MsgType><![CDATA[text]]></MsgType>\n\
             <Content><![CDATA[你好]]></Content>\n</xml>"
        );
    }

    #[test]
    fn splits_cdata_terminators() {
        let xml = render_text_reply("u", "a", 1, "a]]>b]]>");

        assert!(xml.contains("<Content><![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]></Content>"));
    }

    #[test]
    fn drops_characters_xml_cannot_carry() {
        let xml = render_text_reply("u", "a", 1, "a\u{0}b\u{1b}c\td\u{FFFF}");

        assert!(xml.contains("<![CDATA[abc\td]]>"));
    }
}
