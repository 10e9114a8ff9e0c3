//! A TCP proxy in front of Redis that can drop a connection after a command ran and before its
//! reply reaches the client: the client sees a dropped connection for a command that Redis
//! executed, the case where a blind resend runs a script twice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Marks the end of the replies owed before the drop: everything sent before it has run.
const FENCE: &[u8] = b"botgate-proxy-fence";

#[derive(Default)]
struct Shared {
    /// Byte strings that arm a drop, each once.
    armed: Vec<Vec<u8>>,
    /// How many connections were dropped on purpose.
    fired: usize,
    /// Every pattern ever armed, with how many client chunks containing it were forwarded.
    forwarded: Vec<(Vec<u8>, usize)>,
}

/// Forwards `127.0.0.1:<port>` to a Redis server, connection for connection.
pub struct DropProxy {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    _stop: watch::Sender<bool>,
}

impl DropProxy {
    // The test kit has no spans to carry into its tasks.
    #[allow(clippy::disallowed_methods)]
    pub async fn start(upstream_port: u16) -> DropProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, mut stopped) = watch::channel(false);
        let accepting = shared.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(pair) => pair, Err(_) => break },
                    _ = stopped.changed() => break,
                };
                let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                tokio::spawn(relay(client, server, accepting.clone()));
            }
        });
        DropProxy {
            port,
            shared,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next command whose bytes contain `pattern` is forwarded and runs, and then the
    /// connection is closed before its reply reaches the client. Once.
    pub fn arm(&self, pattern: impl Into<Vec<u8>>) {
        let pattern = pattern.into();
        let mut shared = self.lock();
        shared.forwarded.push((pattern.clone(), 0));
        shared.armed.push(pattern);
    }

    /// How many times a command containing an armed `pattern` was forwarded to Redis: 2 after
    /// a drop means the client sent it again and it ran twice.
    pub fn forwarded(&self, pattern: impl AsRef<[u8]>) -> usize {
        let pattern = pattern.as_ref();
        self.lock()
            .forwarded
            .iter()
            .find(|(armed, _)| armed == pattern)
            .map_or(0, |(_, count)| *count)
    }

    /// How many connections were dropped so far.
    pub fn fired(&self) -> usize {
        self.lock().fired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }
}

async fn relay(mut client: TcpStream, server: TcpStream, shared: Arc<Mutex<Shared>>) {
    let (mut from_server, mut to_server) = server.into_split();
    let (mut from_client, mut to_client) = client.split();
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    // Replies seen since the drop was decided; the drop happens once the fence comes back.
    let mut dropping: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            read = from_client.read(&mut up), if dropping.is_none() => {
                let Ok(n) = read else { return };
                if n == 0 { return; }
                let chunk = &up[..n];
                let hit = {
                    let mut shared = shared.lock().unwrap();
                    for (pattern, count) in &mut shared.forwarded {
                        if contains(chunk, pattern) {
                            *count += 1;
                        }
                    }
                    let found = shared.armed.iter().position(|pattern| contains(chunk, pattern));
                    if let Some(index) = found {
                        shared.armed.remove(index);
                        shared.fired += 1;
                    }
                    found.is_some()
                };
                if to_server.write_all(chunk).await.is_err() { return; }
                if hit {
                    let fence = format!(
                        "*2\r\n$4\r\nECHO\r\n${}\r\n{}\r\n",
                        FENCE.len(),
                        String::from_utf8_lossy(FENCE)
                    );
                    if to_server.write_all(fence.as_bytes()).await.is_err() { return; }
                    dropping = Some(Vec::new());
                }
            }
            read = from_server.read(&mut down) => {
                let Ok(n) = read else { return };
                if n == 0 { return; }
                match &mut dropping {
                    Some(seen) => {
                        seen.extend_from_slice(&down[..n]);
                        // Redis answers in order: the fence's reply means the command ran.
                        if contains(seen, FENCE) { return; }
                    }
                    None => {
                        if to_client.write_all(&down[..n]).await.is_err() { return; }
                    }
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
