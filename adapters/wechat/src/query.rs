//! The callback URL's query string: the signed parameters every WXBizMsgCrypt callback carries
//! (`botgate_wxcrypt::query`), plus WeChat's own `signature` and `encrypt_type`.

use std::ops::Deref;

use botgate_contract::AdapterError;
use botgate_wxcrypt::query;

use crate::callback_error;

/// The longest query string accepted. WeChat's are about 250 bytes; this only bounds the work.
pub const MAX_QUERY_BYTES: usize = query::MAX_QUERY_BYTES;

/// The parameters this adapter reads; everything else (`openid`, cache busters) is ignored.
#[derive(Debug)]
pub(crate) struct CallbackQuery {
    /// `msg_signature`, `timestamp`, `nonce`, `echostr`.
    shared: query::CallbackQuery,
    /// The 3-field signature of plaintext mode and URL verification.
    pub(crate) signature: Option<String>,
    pub(crate) encrypt_type: Option<String>,
}

/// How the body of a POST is protected, as announced by `encrypt_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No `encrypt_type` (or `raw`): `signature` over token, timestamp and nonce.
    Plaintext,
    /// `encrypt_type=aes` (safe or compatible mode): `msg_signature` over the `Encrypt` value.
    Aes,
}

impl CallbackQuery {
    pub(crate) fn parse(query: &str) -> Result<Self, AdapterError> {
        let (shared, [signature, encrypt_type]) =
            query::CallbackQuery::parse_with(query, ["signature", "encrypt_type"])
                .map_err(callback_error)?;
        Ok(Self {
            shared,
            signature,
            encrypt_type,
        })
    }

    pub(crate) fn mode(&self) -> Result<Mode, AdapterError> {
        match self.encrypt_type.as_deref() {
            // wechatpy's samples default a missing encrypt_type to "raw"; accept that spelling too.
            None => Ok(Mode::Plaintext),
            Some(kind) if kind.eq_ignore_ascii_case("raw") => Ok(Mode::Plaintext),
            Some(kind) if kind.eq_ignore_ascii_case("aes") => Ok(Mode::Aes),
            Some(_) => Err(AdapterError::Malformed(
                "unsupported encrypt_type".to_owned(),
            )),
        }
    }
}

impl Deref for CallbackQuery {
    type Target = query::CallbackQuery;

    fn deref(&self) -> &query::CallbackQuery {
        &self.shared
    }
}

/// The value of a required parameter.
pub(crate) fn required<'a>(
    value: &'a Option<String>,
    name: &'static str,
) -> Result<&'a str, AdapterError> {
    query::required(value, name).map_err(callback_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values_once() {
        let query = CallbackQuery::parse("?echostr=a%2Bb%2F%3D+c&openid=x&nonce=1").unwrap();

        assert_eq!(query.echostr.as_deref(), Some("a+b/= c"));
        assert_eq!(query.nonce.as_deref(), Some("1"));
        assert_eq!(query.signature, None);
    }

    #[test]
    fn refuses_repeated_parameters() {
        let result = CallbackQuery::parse("signature=a&signature=b");

        assert!(matches!(result, Err(AdapterError::Malformed(_))));
    }

    #[test]
    fn reads_the_mode() {
        let mode = |query: &str| CallbackQuery::parse(query).unwrap().mode();

        assert_eq!(mode(""), Ok(Mode::Plaintext));
        assert_eq!(mode("encrypt_type=raw"), Ok(Mode::Plaintext));
        assert_eq!(mode("encrypt_type=aes"), Ok(Mode::Aes));
        assert!(mode("encrypt_type=des").is_err());
    }
}
