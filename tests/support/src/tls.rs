//! A TLS front for a plain-TCP fake: terminates TLS with a self-signed `localhost` certificate,
//! offers the ALPN protocols it is told to, and pipes each connection to the fake behind it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::FakeBailian;

/// Listens on `127.0.0.1:0` for as long as the test's runtime runs; dropping it closes its
/// connections (and any it accepts later at once).
pub struct TlsFront {
    port: u16,
    certificate: Vec<u8>,
    accepted: Arc<AtomicUsize>,
    open: Arc<Open>,
    /// Bumped to close every open connection.
    close: watch::Sender<u64>,
}

impl TlsFront {
    /// In front of `127.0.0.1:upstream_port`, offering `alpn` (e.g. `[b"h2"]`, or
    /// `[b"http/1.1"]` for a server that will not speak HTTP/2).
    // The test kit has no spans to carry into its tasks.
    #[allow(clippy::disallowed_methods)]
    pub async fn start(upstream_port: u16, alpn: &[&[u8]]) -> TlsFront {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let certificate = key.cert.der().to_vec();
        let private = rustls::pki_types::PrivatePkcs8KeyDer::from(key.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], private.into())
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (close, closed) = watch::channel(0u64);
        let counting = accepted.clone();
        let open = Arc::new(Open::default());
        let tracking = open.clone();
        tokio::spawn(async move {
            let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
            while let Ok((client, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let mut closed = closed.clone();
                closed.mark_unchanged();
                let open = tracking.clone();
                open.count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let relay = async {
                        let Ok(mut client) = acceptor.accept(client).await else {
                            return;
                        };
                        let Ok(mut server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    };
                    tokio::select! {
                        _ = relay => {}
                        _ = closed.changed() => {}
                    }
                    open.count.fetch_sub(1, Ordering::SeqCst);
                    open.changed.notify_waiters();
                });
            }
        });
        TlsFront {
            port,
            certificate,
            accepted,
            open,
            close,
        }
    }

    /// In front of `fake`, offering `alpn`.
    pub async fn before(fake: &FakeBailian, alpn: &[&[u8]]) -> TlsFront {
        let port = url::Url::parse(&fake.base_url())
            .expect("the fake's URL")
            .port()
            .expect("a port");
        TlsFront::start(port, alpn).await
    }

    /// `fake`'s native completion URL, reached through this front.
    pub fn completion_url(&self, fake: &FakeBailian) -> String {
        fake.completion_url().replace(&fake.base_url(), &self.url())
    }

    /// `builder`, trusting this front's certificate.
    pub fn trusted_by(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.add_root_certificate(
            reqwest::Certificate::from_der(&self.certificate).expect("the front's certificate"),
        )
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The self-signed certificate (DER) a client must trust.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection open now, as a server restart would, and returns once they
    /// are closed.
    pub async fn close_connections(&self) {
        let changed = self.open.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        self.close.send_modify(|generation| *generation += 1);
        while self.open.count.load(Ordering::SeqCst) > 0 {
            changed.as_mut().await;
            changed.set(self.open.changed.notified());
            changed.as_mut().enable();
        }
    }
}

/// Connections being relayed, and a signal each time one ends.
#[derive(Default)]
struct Open {
    count: AtomicUsize,
    changed: Notify,
}
