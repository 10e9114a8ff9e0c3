//! The callback URL's query string: WeCom sends exactly the shared signed parameters, read by
//! `botgate_wxcrypt::query` and refused in this adapter's error terms.

use std::ops::Deref;

use botgate_contract::AdapterError;
use botgate_wxcrypt::query;

use crate::callback_error;

/// The longest query string accepted. WeCom's are about 250 bytes; this only bounds the work.
pub const MAX_QUERY_BYTES: usize = query::MAX_QUERY_BYTES;

/// `msg_signature`, `timestamp`, `nonce`, `echostr`; anything else is ignored.
#[derive(Debug)]
pub(crate) struct CallbackQuery(query::CallbackQuery);

impl CallbackQuery {
    /// Decodes `%2B`, `%2F`, `%3D` and `+` (a space) once: WeCom's echostr is base64 and only
    /// matches its signature after URL-decoding (inbound.md §0 row 6).
    pub(crate) fn parse(query: &str) -> Result<Self, AdapterError> {
        query::CallbackQuery::parse(query)
            .map(Self)
            .map_err(callback_error)
    }
}

impl Deref for CallbackQuery {
    type Target = query::CallbackQuery;

    fn deref(&self) -> &query::CallbackQuery {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values_once() {
        let query = CallbackQuery::parse("?echostr=a%2Bb%2F%3D+c%252B&agentid=1&nonce=1").unwrap();

        assert_eq!(query.echostr.as_deref(), Some("a+b/= c%2B"));
        assert_eq!(query.nonce.as_deref(), Some("1"));
        assert_eq!(query.msg_signature, None);
    }

    #[test]
    fn refuses_repeated_parameters() {
        let result = CallbackQuery::parse("msg_signature=a&msg_signature=b");

        assert!(matches!(result, Err(AdapterError::Malformed(_))));
    }

    #[test]
    fn caps_the_length() {
        let result = CallbackQuery::parse(&"a".repeat(MAX_QUERY_BYTES + 1));

        assert!(matches!(result, Err(AdapterError::TooLarge)));
    }
}
