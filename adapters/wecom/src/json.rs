//! The JSON callback format (回调数据格式 = JSON): the same fields as the XML, read from one object.
//!
//! Read into the same shape as the XML reader's output (field texts by name) so that both
//! formats share one decoder. Strings must be JSON strings; numeric fields may be numbers or
//! strings (the XML sends them as text, so a JSON peer may too); `null` is absent.

use botgate_contract::AdapterError;
use serde_json::{Map, Value};

use botgate_wxcrypt::xml::MAX_DOCUMENT_BYTES as MAX_BODY_BYTES;

/// The text of the object's members named in `names`, in the same order; members named in
/// `numeric` may also be JSON numbers, which are returned as their decimal text.
pub(crate) fn read_fields<const N: usize>(
    json: &[u8],
    names: [&str; N],
    numeric: &[&str],
) -> Result<[Option<String>; N], AdapterError> {
    if json.len() > MAX_BODY_BYTES {
        return Err(AdapterError::TooLarge);
    }
    let object: Map<String, Value> = serde_json::from_slice(json)
        .map_err(|error| malformed(format!("not a JSON object: {error}")))?;
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (slot, name) in values.iter_mut().zip(names) {
        *slot = match object.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            // `Number`'s Display is exact for integers beyond 2^53 (MsgId); floats and
            // negatives print as such and are then refused by the integer parser.
            Some(Value::Number(number)) if numeric.contains(&name) => Some(number.to_string()),
            Some(_) => return Err(malformed(format!("{name} has the wrong JSON type"))),
        };
    }
    Ok(values)
}

fn malformed(reason: String) -> AdapterError {
    AdapterError::Malformed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<[Option<String>; 3], AdapterError> {
        read_fields(json.as_bytes(), ["Content", "MsgId", "Gone"], &["MsgId"])
    }

    #[test]
    fn reads_strings_and_exact_large_numbers() {
        let fields = read(r#"{"Content":" hi ","MsgId":4561255354251345929,"Extra":[1]}"#).unwrap();

        assert_eq!(
            fields,
            [
                Some(" hi ".into()),
                Some("4561255354251345929".into()),
                None
            ]
        );
    }

    #[test]
    fn accepts_numbers_as_strings_and_null_as_absent() {
        let fields = read(r#"{"Content":null,"MsgId":"7"}"#).unwrap();

        assert_eq!(fields, [None, Some("7".into()), None]);
    }

    #[test]
    fn refuses_wrong_types_and_non_objects() {
        let cases = [
            r#"{"Content":5}"#,
            r#"{"Content":{"a":1}}"#,
            r#"{"MsgId":true}"#,
            r#"[1]"#,
            r#"{ "FromUserName": :mycreate" }"#,
            "",
        ];

        for json in cases {
            let result = read(json);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{json}: {result:?}"
            );
        }
    }
}
