//! The callback URL's query string: the signature parameters WeChat appends, URL-decoded once.

use botgate_contract::AdapterError;

/// The longest query string accepted. WeChat's are about 250 bytes; this only bounds the work.
pub const MAX_QUERY_BYTES: usize = 4096;

/// The parameters this adapter reads; everything else (`openid`, cache busters) is ignored.
#[derive(Debug, Default)]
pub(crate) struct CallbackQuery {
    pub(crate) signature: Option<String>,
    pub(crate) msg_signature: Option<String>,
    pub(crate) timestamp: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) echostr: Option<String>,
    pub(crate) encrypt_type: Option<String>,
}

/// How the body of a POST is protected, as announced by `encrypt_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No `encrypt_type` (or `raw`): the 3-field `signature` over token, timestamp and nonce.
    Plaintext,
    /// `encrypt_type=aes` (safe or compatible mode): `msg_signature` over the `Encrypt` value.
    Aes,
}

impl CallbackQuery {
    pub(crate) fn parse(query: &str) -> Result<Self, AdapterError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(AdapterError::TooLarge);
        }
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut parsed = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "signature" => &mut parsed.signature,
                "msg_signature" => &mut parsed.msg_signature,
                "timestamp" => &mut parsed.timestamp,
                "nonce" => &mut parsed.nonce,
                "echostr" => &mut parsed.echostr,
                "encrypt_type" => &mut parsed.encrypt_type,
                _ => continue,
            };
            // Two values for one signed parameter: which one did the signer mean? Refuse to guess.
            if slot.is_some() {
                return Err(AdapterError::Malformed(format!(
                    "repeated query parameter `{name}`"
                )));
            }
            *slot = Some(value.into_owned());
        }
        Ok(parsed)
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

/// The value of a required parameter.
pub(crate) fn required<'a>(
    value: &'a Option<String>,
    name: &'static str,
) -> Result<&'a str, AdapterError> {
    value.as_deref().ok_or(AdapterError::MissingParameter(name))
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
