//! TLS for the HTTP/2 connections: rustls with ring, the webpki roots, and ALPN.

use std::sync::{Arc, OnceLock};

use super::LlmError;

/// TLS for public endpoints: the webpki roots, ring, and ALPN `h2`, then `http/1.1` if offered.
pub(super) fn web_tls(offer_http1: bool) -> Arc<rustls::ClientConfig> {
    static CONFIGS: [OnceLock<Arc<rustls::ClientConfig>>; 2] = [OnceLock::new(), OnceLock::new()];
    CONFIGS[usize::from(offer_http1)]
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            h2_tls(roots, offer_http1)
        })
        .clone()
}

/// A client configuration that offers `h2` (and `http/1.1` after it when `offer_http1`),
/// trusting `roots`.
pub(super) fn h2_tls(roots: rustls::RootCertStore, offer_http1: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports the default versions; this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    if offer_http1 {
        config.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Arc::new(config)
}

/// A server that offers other protocols refuses ours with this alert; one that offers none
/// completes the handshake without one.
pub(super) fn refused_h2(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|error| {
            matches!(
                error,
                rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
            )
        })
}

pub(super) fn no_h2() -> LlmError {
    LlmError::Transport("the server did not agree to HTTP/2 (ALPN h2); set http2 = false".into())
}
