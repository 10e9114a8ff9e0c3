//! A private `redis-server` child process on a free loopback port, killed with the test.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::{sleep, timeout, Instant};

/// Environment variable naming another `redis-server` binary to run.
const BINARY_ENV: &str = "REDIS_SERVER_BIN";
/// How long `start` and `restart` wait for PING to answer.
pub(crate) const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two readiness probes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Time allowed for one PING round trip.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// Fresh ports tried when the one picked was taken in the meantime.
pub(crate) const PORT_ATTEMPTS: usize = 5;
/// The port a developer's own Redis usually holds: never used.
const DEFAULT_REDIS_PORT: u16 = 6379;

/// `sh` installs a watchdog, then becomes `redis-server` (same pid, so `Child` is Redis itself).
///
/// The watchdog reads the stdin pipe whose other end this process holds. When the test process
/// ends in any way, even `SIGKILL` or a `static` that is never dropped, the pipe closes and the
/// watchdog kills Redis: `kill_on_drop` alone covers only values that get dropped.
pub(crate) const WATCHDOG_SCRIPT: &str =
    r#"exec 3<&0; ( read -r _line <&3; kill -9 $$ 2>/dev/null ) & exec "$0" "$@""#;

/// A `redis-server` of the test's own, with no persistence, in a temporary directory.
#[derive(Debug)]
pub struct RedisServer {
    binary: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Dropping this closes the watchdog's pipe, which kills Redis.
    watchdog: Option<ChildStdin>,
}

/// Why one attempt to launch Redis failed.
pub(crate) enum LaunchError {
    /// Another process took the port between picking it and Redis binding it.
    PortTaken,
    Other(String),
}

impl RedisServer {
    /// Starts a `redis-server` on a free `127.0.0.1` port and waits until PING answers.
    ///
    /// Panics with install instructions if the binary is missing (`$REDIS_SERVER_BIN` or
    /// `redis-server` on `PATH`), and with Redis's log if it does not come up.
    pub async fn start() -> RedisServer {
        let binary = find_binary();
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).expect("create a temp dir for redis-server");
        let mut server = RedisServer {
            binary,
            port: 0,
            dir,
            child: None,
            watchdog: None,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port();
            match server.launch().await {
                Ok(()) => return server,
                Err(LaunchError::PortTaken) if attempt < PORT_ATTEMPTS => continue,
                Err(LaunchError::PortTaken) => panic!(
                    "redis-server: every one of {PORT_ATTEMPTS} free ports was taken before it bound"
                ),
                Err(LaunchError::Other(message)) => panic!("{message}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The `[store]` lines that point botgate at this server.
    pub fn store_toml(&self) -> String {
        format!("redis_url = \"{}\"", self.url())
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills Redis and waits for it to exit. The port number is kept for [`Self::restart`].
    pub async fn stop(&mut self) {
        self.watchdog = None;
        if let Some(mut child) = self.child.take() {
            if let Err(error) = child.kill().await {
                tracing::warn!(%error, "kill redis-server");
            }
        }
    }

    /// Starts Redis again on the same port (stopping it first if it runs) and waits for PING.
    /// Every key is gone: nothing is persisted.
    pub async fn restart(&mut self) {
        self.stop().await;
        match self.launch().await {
            Ok(()) => {}
            Err(LaunchError::PortTaken) => panic!(
                "redis-server: port {} was taken by another process while stopped",
                self.port
            ),
            Err(LaunchError::Other(message)) => panic!("{message}"),
        }
    }

    /// A fresh connection, for assertions on what the gateway stored.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("parse the redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis-server")
    }

    /// Spawns Redis on `self.port` and waits until it answers PING or gives up.
    async fn launch(&mut self) -> Result<(), LaunchError> {
        let log_path = self.dir.join("redis.log");
        let log = std::fs::File::create(&log_path).map_err(|error| {
            LaunchError::Other(format!("create {}: {error}", log_path.display()))
        })?;
        let log_err = log
            .try_clone()
            .map_err(|error| LaunchError::Other(format!("clone the log handle: {error}")))?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no"])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| LaunchError::Other(format!("spawn sh for redis-server: {error}")))?;
        self.watchdog = child.stdin.take();
        self.child = Some(child);

        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(status)) => status,
                Some(Err(error)) => return Err(LaunchError::Other(format!("poll redis: {error}"))),
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                self.watchdog = None;
                return Err(exit_error(status, &log_path));
            }
            if ping(self.port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop().await;
                return Err(LaunchError::Other(format!(
                    "redis-server on port {} did not answer PING within {READY_DEADLINE:?}; log:\n{}",
                    self.port,
                    read_log(&log_path)
                )));
            }
            sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.watchdog = None;
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Classifies an early exit of Redis by its log.
pub(crate) fn exit_error(status: ExitStatus, log_path: &Path) -> LaunchError {
    let log = read_log(log_path);
    if log.contains("Address already in use") {
        LaunchError::PortTaken
    } else {
        LaunchError::Other(format!("redis-server exited early ({status}); log:\n{log}"))
    }
}

pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| format!("(no log: {error})"))
}

/// True when Redis answers `PING` with `+PONG` on the port.
pub(crate) async fn ping(port: u16) -> bool {
    let round_trip = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut reply = [0_u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(timeout(PING_TIMEOUT, round_trip).await, Ok(Some(true)))
}

/// A port the kernel just handed out on 127.0.0.1, released again for Redis to take.
pub(crate) fn free_port() -> u16 {
    loop {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
        let port = listener.local_addr().expect("read the bound port").port();
        if port != DEFAULT_REDIS_PORT {
            return port;
        }
    }
}

/// `$REDIS_SERVER_BIN`, or the `redis-server` found on `PATH`; panics with install help otherwise.
pub(crate) fn find_binary() -> String {
    if let Ok(binary) = std::env::var(BINARY_ENV) {
        if Path::new(&binary).is_file() {
            return binary;
        }
        panic!("{BINARY_ENV}={binary} is not a file");
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path.to_string_lossy().into_owned(),
        None => panic!(
            "redis-server was not found on PATH; these tests start their own. Install it with \
             `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), \
             or point {BINARY_ENV} at the binary."
        ),
    }
}

/// A directory of its own for each server, under the system temp dir.
pub(crate) fn temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    std::env::temp_dir().join(format!(
        "botgate-redis-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}
