//! The peers `compare` measures botgate against: the Python (wechatpy + aiohttp) and Go
//! (standard library) WeChat bots of `../shared/bench/peers`, set up when missing and run as
//! child processes on free loopback ports.
//!
//! Nothing is copied from or written into the peers' directory: the Python venv, the Go binary
//! and Go's caches live under `target/bench-peers/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::http::{self, Connection};
use crate::stack;

/// The Python peer's packages, as the peers' README installs them.
const PIP_PACKAGES: &[&str] = &["wechatpy==1.8.18", "cryptography", "aiohttp"];
const PYTHON_PEER: &str = "wechatpy_aiohttp_bot.py";
const GO_PEER: &str = "go_stdlib_bot";
/// A peer not answering HTTP by then is reported with its log.
const READY_DEADLINE: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(10);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a peer's log shown when it fails.
const LOG_TAIL_LINES: usize = 12;

/// Which peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Python,
    Go,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Python => "python",
            Kind::Go => "go",
        }
    }
}

/// How to start each peer, once set up.
pub struct Peers {
    python: PathBuf,
    python_script: PathBuf,
    go_binary: PathBuf,
    pub python_version: String,
    pub go_version: String,
}

/// `--peers`, or `../shared/bench/peers` beside the workspace root.
pub fn locate(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match explicit {
        Some(dir) => dir,
        None => workspace_root().join("../shared/bench/peers"),
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("the peers' directory {} (pass --peers PATH)", dir.display()))?;
    for needed in [PYTHON_PEER, GO_PEER] {
        if !dir.join(needed).exists() {
            bail!("{} has no {needed}", dir.display());
        }
    }
    Ok(dir)
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `target/bench-peers`, beside the binaries of this build.
fn peers_target() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the bench's own executable")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench's executable has no target directory")?;
    Ok(target.join("bench-peers"))
}

impl Peers {
    /// Makes sure both peers can run: the venv with the Python packages, Go, the Go binary
    /// (rebuilt every time: a no-op from Go's cache when nothing changed).
    pub fn set_up(dir: &Path) -> anyhow::Result<Peers> {
        let target = peers_target()?;
        std::fs::create_dir_all(&target).with_context(|| format!("create {}", target.display()))?;
        let python = set_up_python(&target)?;
        let python_version = output(Command::new(&python).arg("--version"))
            .map(|version| {
                let packages = output(Command::new(&python).args([
                    "-c",
                    "import wechatpy, aiohttp, cryptography; \
                     print(f'wechatpy {wechatpy.__version__}, aiohttp {aiohttp.__version__}, cryptography {cryptography.__version__}')",
                ]))
                .unwrap_or_default();
                format!("{version}, {packages}")
            })
            .unwrap_or_default();
        let go = find_go()?;
        let go_version = output(Command::new(&go).arg("version")).unwrap_or_default();
        let go_binary = build_go(&go, &dir.join(GO_PEER), &target)?;
        Ok(Peers {
            python,
            python_script: dir.join(PYTHON_PEER),
            go_binary,
            python_version,
            go_version,
        })
    }

    /// Starts `kind` on a free port, pointed at an OpenAI-compatible `llm_base` (`…/v1`).
    pub async fn start(&self, kind: Kind, env: &PeerEnv<'_>) -> anyhow::Result<Peer> {
        let command = match kind {
            Kind::Python => {
                let mut command = Command::new(&self.python);
                command.arg(&self.python_script);
                command
            }
            Kind::Go => Command::new(&self.go_binary),
        };
        Peer::spawn(kind, command, env).await
    }
}

/// What a peer is told through its environment.
pub struct PeerEnv<'a> {
    pub token: &'a str,
    pub aes_key: &'a str,
    pub app_id: &'a str,
    pub llm_base: String,
    pub llm_key: &'a str,
    pub llm_model: &'a str,
}

/// The venv's python, creating the venv and installing the packages if they do not import.
fn set_up_python(target: &Path) -> anyhow::Result<PathBuf> {
    let venv = target.join("venv");
    let python = venv.join("bin").join("python");
    let imports = |python: &Path| {
        std::process::Command::new(python)
            .args(["-c", "import wechatpy, aiohttp, cryptography"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if python.is_file() && imports(&python) {
        return Ok(python);
    }
    if !python.is_file() {
        eprintln!(
            "compare: creating the Python peer's venv: python3 -m venv {}",
            venv.display()
        );
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv))
        .context("python3 -m venv (is python3-venv installed?)")?;
    }
    eprintln!(
        "compare: installing the Python peer's packages: {} -m pip install -q {}",
        python.display(),
        PIP_PACKAGES.join(" ")
    );
    run(std::process::Command::new(&python)
        .args(["-m", "pip", "install", "-q"])
        .args(PIP_PACKAGES))
    .context("pip install the Python peer's packages")?;
    if !imports(&python) {
        bail!(
            "{} still cannot import wechatpy, aiohttp and cryptography",
            python.display()
        );
    }
    Ok(python)
}

/// `go` on the PATH or in Debian's place, installing Debian's `golang-go` if there is none.
fn find_go() -> anyhow::Result<PathBuf> {
    let known = || {
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("go"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/lib/go/bin/go")])
            .find(|go| go.is_file())
    };
    if let Some(go) = known() {
        return Ok(go);
    }
    eprintln!("compare: no Go found: apt-get install -y -qq golang-go (Debian's Go)");
    // Another apt may hold the lock (an install started in the background): wait for it.
    for attempt in 1..=30 {
        let status = std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "golang-go"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("run apt-get (install golang-go yourself, or put go on the PATH)")?;
        if status.success() {
            break;
        }
        if let Some(go) = known() {
            return Ok(go);
        }
        if attempt == 30 {
            bail!("apt-get install golang-go failed ({status})");
        }
        eprintln!("compare: apt-get failed ({status}), maybe another apt holds the lock; retrying in 10 s");
        std::thread::sleep(Duration::from_secs(10));
    }
    known().context("golang-go is installed but no go binary was found")
}

/// `go build` of the Go peer into `target`, with Go's caches there too.
fn build_go(go: &Path, source: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    let binary = target.join(GO_PEER);
    eprintln!(
        "compare: building the Go peer: (cd {} && go build -o {} .)",
        source.display(),
        binary.display()
    );
    run(std::process::Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(source)
        .env("GOCACHE", target.join("go-cache"))
        .env("GOPATH", target.join("go-path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on"))
    .context("build the Go peer")?;
    Ok(binary)
}

fn run(command: &mut std::process::Command) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("spawn {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// A command's first line of output (stdout, else stderr), for the versions.
fn output(command: &mut Command) -> Option<String> {
    let output = command.as_std_mut().stdin(Stdio::null()).output().ok()?;
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    Some(
        String::from_utf8_lossy(&text)
            .lines()
            .next()?
            .trim()
            .to_owned(),
    )
}

/// A running peer, killed on drop.
pub struct Peer {
    child: Child,
    pid: u32,
    address: std::net::SocketAddr,
    startup: Duration,
    log: PathBuf,
}

impl Peer {
    async fn spawn(kind: Kind, mut command: Command, env: &PeerEnv<'_>) -> anyhow::Result<Peer> {
        let port = stack::free_port()?;
        let log = std::env::temp_dir().join(format!(
            "botgate-bench-{}-{}-{port}.log",
            std::process::id(),
            kind.name()
        ));
        let file = std::fs::File::create(&log).context("create the peer's log")?;
        let file_err = file.try_clone().context("clone the log handle")?;
        let started = Instant::now();
        let child = command
            .env("WX_TOKEN", env.token)
            .env("WX_AES_KEY", env.aes_key)
            .env("WX_APPID", env.app_id)
            .env("LLM_BASE", &env.llm_base)
            .env("LLM_KEY", env.llm_key)
            .env("LLM_MODEL", env.llm_model)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file_err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn the {} peer", kind.name()))?;
        let pid = child.id().context("the peer's pid")?;
        let mut peer = Peer {
            child,
            pid,
            address: std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
            startup: Duration::ZERO,
            log,
        };
        // Any HTTP answer will do (an unsigned GET /wx is refused with 403).
        let probe = http::get("/wx");
        loop {
            if let Some(status) = peer.child.try_wait()? {
                bail!(
                    "the {} peer exited before it was ready ({status}); log:\n{}",
                    kind.name(),
                    peer.log_tail()
                );
            }
            let mut connection = Connection::new(peer.address);
            if connection.send(&probe).await.is_ok() {
                break;
            }
            if started.elapsed() > READY_DEADLINE {
                bail!(
                    "the {} peer did not answer within {READY_DEADLINE:?}; log:\n{}",
                    kind.name(),
                    peer.log_tail()
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
        peer.startup = started.elapsed();
        Ok(peer)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    pub fn startup(&self) -> Duration {
        self.startup
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`].
    pub async fn stop(mut self) {
        let asked = Command::new("kill")
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

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
