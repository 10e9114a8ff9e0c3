//! WeCom's flat `<xml>` documents, read by the strict reader WeChat shares
//! (`botgate_wxcrypt::xml`): only the fields named, nothing else trusted.

use botgate_contract::AdapterError;

use crate::callback_error;

/// The text of the root's children named in `names`, in the same order.
pub(crate) fn read_fields<const N: usize>(
    xml: &[u8],
    names: [&str; N],
) -> Result<[Option<String>; N], AdapterError> {
    botgate_wxcrypt::xml::read_fields(xml, names).map_err(callback_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MAX_BODY_BYTES;

    fn read(xml: &str) -> Result<[Option<String>; 2], AdapterError> {
        read_fields(xml.as_bytes(), ["Content", "AgentID"])
    }

    #[test]
    fn reads_cdata_bare_and_mixed_text_exactly() {
        let fields = read("<xml>\n<Content> a &amp; b&#x4e2d;<![CDATA[ <c> ]]>\n</Content>\n<AgentID><![CDATA[218]]></AgentID></xml>").unwrap();

        assert_eq!(fields[0].as_deref(), Some(" a & b中 <c> \n"));
        assert_eq!(fields[1].as_deref(), Some("218"));
    }

    #[test]
    fn skips_nested_and_unknown_elements() {
        let fields = read(
            "<xml><ScanCodeInfo><Content>nested</Content></ScanCodeInfo><Other/><AgentID/></xml>",
        )
        .unwrap();

        assert_eq!(fields, [None, Some(String::new())]);
    }

    #[test]
    fn refuses_what_a_genuine_document_never_contains() {
        let cases = [
            "<!DOCTYPE xml><xml><Content>a</Content></xml>",
            "<!DOCTYPE xml [<!ENTITY e \"x\">]><xml><Content>&e;</Content></xml>",
            "<xml><Content>&e;</Content></xml>",
            "<root><Content>a</Content></root>",
            "<xml><Content>a</Content></xml><xml/>",
            "<xml><Content>a</Content>",
            "<xml><Content>a</xml>",
            "<xml><Content>a</Content><Content>b</Content></xml>",
            "junk<xml/>",
            "",
        ];

        for xml in cases {
            let result = read(xml);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{xml}: {result:?}"
            );
        }
    }

    #[test]
    fn caps_the_size() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];

        assert_eq!(read_fields(&body, ["Content"]), Err(AdapterError::TooLarge));
    }
}
