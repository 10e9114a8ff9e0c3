//! The signed callback URL's query string: `msg_signature`, `timestamp`, `nonce` and, on URL
//! verification, `echostr`, URL-decoded once.
//!
//! Decoding once matters: an `echostr` is base64, and `%2B`, `%2F`, `%3D` and `+` (a space) only
//! match its signature after URL-decoding (inbound.md §0 row 6).

use crate::callback::{CallbackError, Signed};

/// The longest query string accepted. Tencent's are about 250 bytes; this only bounds the work.
pub const MAX_QUERY_BYTES: usize = 4096;

/// The parameters every WXBizMsgCrypt callback URL carries; anything else is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackQuery {
    pub msg_signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
}

impl CallbackQuery {
    /// `query` with or without its leading `?`.
    pub fn parse(query: &str) -> Result<Self, CallbackError> {
        let (parsed, []) = Self::parse_with(query, [])?;
        Ok(parsed)
    }

    /// Also reads the platform's own parameters named in `extra` (WeChat's `signature` and
    /// `encrypt_type`), returned in that order under the same rules. Naming a shared parameter
    /// there has no effect: it is read into [`CallbackQuery`].
    pub fn parse_with<const N: usize>(
        query: &str,
        extra: [&str; N],
    ) -> Result<(Self, [Option<String>; N]), CallbackError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(CallbackError::TooLarge);
        }
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut parsed = Self::default();
        let mut extras: [Option<String>; N] = std::array::from_fn(|_| None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "msg_signature" => &mut parsed.msg_signature,
                "timestamp" => &mut parsed.timestamp,
                "nonce" => &mut parsed.nonce,
                "echostr" => &mut parsed.echostr,
                other => match extra.iter().position(|wanted| *wanted == other) {
                    Some(index) => &mut extras[index],
                    None => continue,
                },
            };
            // Two values for one signed parameter: which one did the signer mean? Refuse to guess.
            if slot.is_some() {
                return Err(CallbackError::Malformed(format!(
                    "repeated query parameter `{name}`"
                )));
            }
            *slot = Some(value.into_owned());
        }
        Ok((parsed, extras))
    }

    /// `msg_signature`, `timestamp` and `nonce`, the first one absent named in the error.
    pub fn signed(&self) -> Result<Signed<'_>, CallbackError> {
        Ok(Signed {
            msg_signature: required(&self.msg_signature, "msg_signature")?,
            timestamp: required(&self.timestamp, "timestamp")?,
            nonce: required(&self.nonce, "nonce")?,
        })
    }
}

/// The value of a required parameter.
pub fn required<'a>(
    value: &'a Option<String>,
    name: &'static str,
) -> Result<&'a str, CallbackError> {
    value
        .as_deref()
        .ok_or(CallbackError::MissingParameter(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_extra_parameters_in_the_order_named() {
        let (query, [kind, signature]) = CallbackQuery::parse_with(
            "signature=s&nonce=n&encrypt_type=aes&openid=o",
            ["encrypt_type", "signature"],
        )
        .unwrap();

        assert_eq!(query.nonce.as_deref(), Some("n"));
        assert_eq!(kind.as_deref(), Some("aes"));
        assert_eq!(signature.as_deref(), Some("s"));
    }

    #[test]
    fn ignores_unnamed_parameters_even_repeated() {
        let query = CallbackQuery::parse("signature=a&signature=b&echostr=e").unwrap();

        assert_eq!(query.echostr.as_deref(), Some("e"));
    }

    #[test]
    fn refuses_repeated_extra_parameters() {
        let result =
            CallbackQuery::parse_with("encrypt_type=aes&encrypt_type=raw", ["encrypt_type"]);

        assert_eq!(
            result,
            Err(CallbackError::Malformed(
                "repeated query parameter `encrypt_type`".into()
            ))
        );
    }

    #[test]
    fn signed_names_the_first_missing_parameter() {
        let missing = |query: &str| CallbackQuery::parse(query).unwrap().signed().err();
        let complete = CallbackQuery::parse("msg_signature=s&timestamp=1&nonce=n").unwrap();

        assert_eq!(
            missing("timestamp=1"),
            Some(CallbackError::MissingParameter("msg_signature"))
        );
        assert_eq!(
            missing("msg_signature=s&nonce=n"),
            Some(CallbackError::MissingParameter("timestamp"))
        );
        assert_eq!(
            missing("msg_signature=s&timestamp=1"),
            Some(CallbackError::MissingParameter("nonce"))
        );
        assert_eq!(
            complete.signed(),
            Ok(Signed {
                msg_signature: "s",
                timestamp: "1",
                nonce: "n"
            })
        );
    }

    #[test]
    fn caps_the_length() {
        let result = CallbackQuery::parse(&"a".repeat(MAX_QUERY_BYTES + 1));

        assert_eq!(result, Err(CallbackError::TooLarge));
    }
}
