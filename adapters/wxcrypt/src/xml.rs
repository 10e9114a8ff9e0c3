//! The strict reader for the flat `<xml>` documents of WeChat and WeCom callbacks: the outer
//! envelope around `Encrypt` and the decrypted message, both a root whose children are the fields.
//!
//! Only direct children of the root are read; nested elements (`ScanCodeInfo`, `SendPicsInfo`, …)
//! and unknown fields are skipped, so new platform fields never break decoding. A field's text is
//! the concatenation of its text and CDATA children, entities resolved. The envelope is
//! attacker-controlled until its signature is checked, so structure is strict: no DTD
//! (`<!DOCTYPE`, and with it `<!ENTITY`: no billion laughs, no parser differential), one `<xml>`
//! root, balanced tags, only the five predefined entities, repeated fields refused, and a size cap.

use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

use crate::callback::CallbackError;

/// The largest document accepted. Real payloads are a few KB; Tencent documents no limit, so
/// this only bounds the work an attacker can ask for.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The text of the root's children named in `names`, in the same order; `None` where absent.
pub fn read_fields<const N: usize>(
    xml: &[u8],
    names: [&str; N],
) -> Result<[Option<String>; N], CallbackError> {
    if xml.len() > MAX_DOCUMENT_BYTES {
        return Err(CallbackError::TooLarge);
    }
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut reader = Reader::from_reader(xml);
    let mut depth = 0usize;
    let mut root = RootState::NotSeen;
    // The field being read (an index into `names`) and its text so far.
    let mut current: Option<(usize, String)> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|error| malformed(format!("not well-formed XML: {error}")))?;
        match event {
            Event::DocType(_) => {
                return Err(malformed("document type declarations are not accepted"));
            }
            Event::Start(start) => {
                if depth == 0 {
                    root = root.open(start.name().as_ref())?;
                } else if depth == 1 {
                    let index = field_index(&names, start.name().as_ref());
                    current = index.map(|index| (index, String::new()));
                }
                depth += 1;
            }
            Event::Empty(empty) => {
                if depth == 0 {
                    root = root.open(empty.name().as_ref())?.close();
                } else if depth == 1 {
                    if let Some(index) = field_index(&names, empty.name().as_ref()) {
                        store(&mut values, &names, index, String::new())?;
                    }
                }
            }
            Event::End(_) => {
                // quick-xml rejects unmatched and mismatched end tags, so depth is at least 1.
                depth = depth.saturating_sub(1);
                match depth {
                    0 => root = root.close(),
                    1 => {
                        if let Some((index, text)) = current.take() {
                            store(&mut values, &names, index, text)?;
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(text) => {
                let text = text
                    .xml10_content()
                    .map_err(|_| malformed("text is not UTF-8"))?;
                if depth == 0 && !text.trim().is_empty() {
                    return Err(malformed("text outside the root element"));
                }
                append(&mut current, depth, &text);
            }
            Event::CData(cdata) => {
                let text = cdata
                    .xml10_content()
                    .map_err(|_| malformed("CDATA is not UTF-8"))?;
                if depth == 0 {
                    return Err(malformed("CDATA outside the root element"));
                }
                append(&mut current, depth, &text);
            }
            Event::GeneralRef(reference) => {
                // Resolved even where ignored: an undefined entity makes the document malformed.
                let text = resolve_reference(&reference)?;
                if depth == 0 {
                    return Err(malformed("reference outside the root element"));
                }
                append(&mut current, depth, &text);
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }

    match root {
        RootState::Closed => Ok(values),
        RootState::NotSeen => Err(malformed("no <xml> root element")),
        RootState::Open => Err(malformed("the <xml> root element is not closed")),
    }
}

/// A numeric field's text as an unsigned integer. Numbers arrive padded or CDATA-wrapped
/// (`<![CDATA[ 17 ]]>`) in genuine documents, so they are trimmed; strings never should be.
pub fn parse_number(field: &str, value: Option<String>) -> Result<Option<u64>, CallbackError> {
    value
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| malformed(format!("{field} is not an unsigned integer")))
        })
        .transpose()
}

#[derive(Clone, Copy)]
enum RootState {
    NotSeen,
    Open,
    Closed,
}

impl RootState {
    fn open(self, name: &[u8]) -> Result<Self, CallbackError> {
        match self {
            RootState::NotSeen if name == b"xml" => Ok(RootState::Open),
            RootState::NotSeen => Err(malformed("the root element must be <xml>")),
            RootState::Open | RootState::Closed => Err(malformed("more than one root element")),
        }
    }

    fn close(self) -> Self {
        RootState::Closed
    }
}

fn field_index(names: &[&str], name: &[u8]) -> Option<usize> {
    names.iter().position(|wanted| wanted.as_bytes() == name)
}

/// Text belongs to a field only when it is a direct child of that field (depth 2).
fn append(current: &mut Option<(usize, String)>, depth: usize, text: &str) {
    if depth == 2 {
        if let Some((_, value)) = current {
            value.push_str(text);
        }
    }
}

/// A repeated field is refused rather than guessed at: which copy would a different parser, or
/// the signer, have used?
fn store<const N: usize>(
    values: &mut [Option<String>; N],
    names: &[&str; N],
    index: usize,
    text: String,
) -> Result<(), CallbackError> {
    let slot = &mut values[index];
    if slot.is_some() {
        return Err(malformed(format!("repeated field {}", names[index])));
    }
    *slot = Some(text);
    Ok(())
}

fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, CallbackError> {
    let invalid = || malformed("invalid character reference");
    if let Some(character) = reference.resolve_char_ref().map_err(|_| invalid())? {
        return Ok(character.to_string());
    }
    let name = reference.decode().map_err(|_| invalid())?;
    quick_xml::escape::resolve_xml_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| malformed("undefined entity"))
}

fn malformed(reason: impl Into<String>) -> CallbackError {
    CallbackError::Malformed(reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_fields_in_the_order_asked_whatever_the_document_order() {
        let xml = b"<xml><B>2</B><Unknown>x</Unknown><A><![CDATA[1]]></A></xml>";

        let fields = read_fields(xml, ["A", "Missing", "B"]);

        assert_eq!(fields, Ok([Some("1".into()), None, Some("2".into())]));
    }

    #[test]
    fn an_empty_element_is_present_and_empty() {
        let fields = read_fields(b"<xml><A/><B></B></xml>", ["A", "B"]);

        assert_eq!(fields, Ok([Some(String::new()), Some(String::new())]));
    }

    #[test]
    fn names_the_repeated_field() {
        let result = read_fields(b"<xml><A>1</A><A/></xml>", ["A"]);

        assert_eq!(
            result,
            Err(CallbackError::Malformed("repeated field A".into()))
        );
    }

    #[test]
    fn refuses_structure_a_signed_document_never_has() {
        let cases: &[&[u8]] = &[
            b"<!DOCTYPE xml><xml/>",
            b"<xml>&e;</xml>",
            b"<root/>",
            b"<xml/><xml/>",
            b"<xml>",
            b"junk<xml/>",
            b"<![CDATA[a]]><xml/>",
            b"",
        ];

        for xml in cases {
            let result = read_fields(xml, ["A"]);

            assert!(
                matches!(result, Err(CallbackError::Malformed(_))),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(xml)
            );
        }
    }

    #[test]
    fn caps_the_size_before_reading() {
        let xml = vec![b'<'; MAX_DOCUMENT_BYTES + 1];

        assert_eq!(read_fields(&xml, ["A"]), Err(CallbackError::TooLarge));
    }

    #[test]
    fn numbers_are_trimmed_and_must_be_unsigned() {
        let padded = parse_number("MsgId", Some(" 18446744073709551615\n".into()));
        let absent = parse_number("MsgId", None);
        let negative = parse_number("CreateTime", Some("-1".into()));

        assert_eq!(padded, Ok(Some(u64::MAX)));
        assert_eq!(absent, Ok(None));
        assert_eq!(
            negative,
            Err(CallbackError::Malformed(
                "CreateTime is not an unsigned integer".into()
            ))
        );
    }
}
