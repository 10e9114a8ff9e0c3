//! What a run stands on: botgate's release binary as a child process with a generated config:
//! its readiness, its memory and its log.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::http::{self, Connection};

/// Polling interval for readiness: fine enough to measure a startup of a few milliseconds.
const READY_POLL: Duration = Duration::from_millis(1);
/// A gateway that is not ready by then is reported with its log.
const READY_DEADLINE: Duration = Duration::from_secs(15);
/// How long botgate may take to shut down after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often [`Botgate::watch_rss`] samples.
const RSS_SAMPLE: Duration = Duration::from_millis(100);
/// Distinct lines of botgate's log shown when it fails.
const LOG_TAIL_LINES: usize = 12;

/// Where botgate's release binary is, building it first when run through cargo.
///
/// Under `cargo run` (cargo sets `$CARGO`), `cargo build --release --bin botgate` runs every
/// time: a no-op when fresh, and it keeps the bench from measuring a stale binary after `src/`
/// changed. Run directly, the binary beside the bench's own executable is used, and built once
/// if it is missing.
pub fn botgate_binary(explicit: Option<PathBuf>, build: bool) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--botgate {}: no such file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locate the bench's own executable")?;
    // target/<profile>/botgate-bench → target/release/botgate, whatever the bench's profile.
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench's executable has no target directory")?;
    let binary = target.join("release").join("botgate");
    let cargo = std::env::var_os("CARGO");
    if build && (cargo.is_some() || !binary.is_file()) {
        let cargo = cargo.unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        eprintln!("building botgate: cargo build --release --bin botgate");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--bin", "botgate", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target)
            .status()
            .context("run cargo build --release --bin botgate")?;
        if !status.success() {
            bail!("cargo build --release --bin botgate failed ({status})");
        }
    }
    if !binary.is_file() {
        bail!(
            "{} is missing: run `cargo build --release --bin botgate` or pass --botgate PATH",
            binary.display()
        );
    }
    Ok(binary)
}

/// Why botgate did not come up.
#[derive(Debug)]
pub enum StartError {
    /// It exited before it was ready (e.g. it refused the configuration); its log says why.
    Exited {
        status: ExitStatus,
        log: String,
    },
    Other(anyhow::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Exited { status, log } => {
                write!(
                    f,
                    "botgate exited before it was ready ({status}); log:\n{log}"
                )
            }
            StartError::Other(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Other(error)
    }
}

/// The highest resident memory seen by [`Botgate::watch_rss`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RssPeak {
    pub kib: u64,
    pub at: Duration,
}

/// A running botgate, killed (and its directory removed) on drop.
pub struct Botgate {
    child: Child,
    pid: u32,
    address: SocketAddr,
    startup: Duration,
    dir: PathBuf,
}

impl Botgate {
    /// Writes `[server]` (a free loopback port, `workers`) followed by `config`, starts
    /// `binary serve` with `RUST_LOG=warn`, and waits for the first 200 from `GET /readyz`.
    pub async fn start(binary: &Path, workers: usize, config: &str) -> Result<Botgate, StartError> {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("create {}", dir.display()))
            .map_err(StartError::Other)?;
        let port = free_port().map_err(StartError::Other)?;
        let text =
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = {workers}\n\n{config}");
        let config_path = dir.join("botgate.toml");
        std::fs::write(&config_path, text)
            .with_context(|| format!("write {}", config_path.display()))?;
        let log = std::fs::File::create(dir.join("botgate.log")).context("create the log file")?;
        let log_err = log.try_clone().context("clone the log handle")?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        let pid = child.id().context("botgate's pid")?;
        let mut botgate = Botgate {
            child,
            pid,
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            startup: Duration::ZERO,
            dir,
        };
        botgate.startup = botgate.wait_ready(started).await?;
        Ok(botgate)
    }

    async fn wait_ready(&mut self, started: Instant) -> Result<Duration, StartError> {
        let request = http::get("/readyz");
        loop {
            if let Some(status) = self.child.try_wait().context("poll botgate")? {
                return Err(StartError::Exited {
                    status,
                    log: self.log_tail(),
                });
            }
            // A fresh connection each time: refused until botgate listens.
            let mut connection = Connection::new(self.address);
            if let Ok(response) = connection.send(&request).await {
                if response.status == 200 {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > READY_DEADLINE {
                return Err(StartError::Other(anyhow::anyhow!(
                    "botgate was not ready within {READY_DEADLINE:?}; log:\n{}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// From spawn to the first 200 from `/readyz`.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmHWM")
    }

    /// Resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmRSS")
    }

    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        status_kib(self.pid, field)
    }

    /// Drives `work` while sampling botgate's resident memory every [`RSS_SAMPLE`]: returns the
    /// highest sample and when it was taken, counted from `since`.
    pub async fn watch_rss<T>(
        &self,
        work: impl Future<Output = T>,
        since: Instant,
    ) -> (T, RssPeak) {
        tokio::pin!(work);
        let mut ticks = tokio::time::interval(RSS_SAMPLE);
        let mut peak = RssPeak::default();
        loop {
            tokio::select! {
                output = &mut work => return (output, peak),
                _ = ticks.tick() => {
                    let kib = self.rss_kib().unwrap_or(0);
                    if kib > peak.kib {
                        peak = RssPeak { kib, at: since.elapsed() };
                    }
                }
            }
        }
    }

    /// Whether botgate is still running (a crash mid-run voids the numbers).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last distinct lines of botgate's log (warnings and errors: it runs with
    /// `RUST_LOG=warn`), each with how often it was logged, timestamps aside.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("botgate.log"))
            .unwrap_or_else(|error| format!("(no log: {error})"));
        let mut distinct: Vec<(String, usize)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for line in log.lines() {
            let line = without_timestamp(line);
            match index.get(&line) {
                Some(&at) => distinct[at].1 += 1,
                None => {
                    index.insert(line.clone(), distinct.len());
                    distinct.push((line, 1));
                }
            }
        }
        let start = distinct.len().saturating_sub(LOG_TAIL_LINES);
        distinct[start..]
            .iter()
            .map(|(line, count)| match count {
                1 => line.clone(),
                _ => format!("{line}  (×{count})"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Asks botgate to stop (SIGTERM, as an orchestrator would, so wrappers such as valgrind
    /// write their reports), and kills it if it has not gone within [`STOP_GRACE`].
    pub async fn stop(mut self) {
        let asked = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if matches!(asked, Ok(status) if status.success()) {
            if let Ok(Ok(_)) = tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

impl Drop for Botgate {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A JSON log line without its `"timestamp"` field, so repeats of one event compare equal.
fn without_timestamp(line: &str) -> String {
    let Some(start) = line.find("\"timestamp\":\"") else {
        return line.to_owned();
    };
    let value = start + "\"timestamp\":\"".len();
    match line[value..].find("\",") {
        Some(end) => format!("{}{}", &line[..start], &line[value + end + 2..]),
        None => line.to_owned(),
    }
}

/// A memory figure of `/proc/PID/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// A port the kernel just handed out on 127.0.0.1, released again for botgate to take.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a free port")?;
    Ok(listener.local_addr().context("read the bound port")?.port())
}

/// A directory of its own for each botgate, under the system temp dir.
fn temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "botgate-bench-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}
