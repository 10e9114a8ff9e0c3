//! A real headless Chromium driven through chromedriver with [`fantoccini`], for browser tests.

use std::ffi::OsString;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

// Re-exported so a test can use `Locator`, `Element` and the rest without a dependency of its own.
pub use fantoccini;
pub use fantoccini::elements::Element;

/// Environment variable naming the `chromedriver` binary to run.
pub const CHROMEDRIVER_ENV: &str = "BOTGATE_CHROMEDRIVER";
/// Environment variable naming the Chromium (or Chrome) binary chromedriver starts.
pub const CHROMIUM_ENV: &str = "BOTGATE_CHROMIUM";
/// What every "not found" error tells the reader to do.
const INSTALL_HINT: &str = "apt-get install chromium chromium-driver (or run .ci/run)";
/// How long chromedriver may take to print its port and then report ready.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two checks of a condition or of chromedriver's `/status`.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Time allowed for one `/status` round trip.
const STATUS_TIMEOUT: Duration = Duration::from_millis(1000);
/// Lines of chromedriver output kept for error messages; Chromium can be chatty.
const OUTPUT_LINES: usize = 200;
/// What chromedriver prints once it listens; `--port=0` makes this the only way to learn the port.
const STARTED_MARKER: &str = "was started successfully on port ";

/// `sh` installs a watchdog in a process group of its own, then becomes chromedriver.
///
/// The watchdog waits for EOF on the stdin pipe whose other end this process holds and then kills
/// the whole group: chromedriver and the Chromium it launched, which stays in the group. So the
/// browser goes away however the test process ends, even by `SIGKILL` or a leaked value.
/// `2>&1` puts chromedriver's errors into the output kept for error messages.
const WATCHDOG_SCRIPT: &str =
    r#"exec 3<&0 2>&1; ( read -r _line <&3; kill -9 -$$ ) >/dev/null 2>&1 & exec "$0" "$@""#;

/// Why the browser could not be started or a step in it failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// A binary is missing; the message says how to install it.
    #[error("{what} was not found ({looked}); install it with: {INSTALL_HINT}")]
    Missing { what: &'static str, looked: String },
    /// chromedriver did not come up; its output is in the message.
    #[error("chromedriver did not start: {0}")]
    Driver(String),
    /// chromedriver refused the session, usually because Chromium failed to launch.
    #[error("could not open a Chromium session: {0}")]
    Session(#[from] NewSessionError),
    /// A WebDriver command failed (element not found, script error, lost connection, ...).
    #[error("webdriver: {0}")]
    Command(#[from] CmdError),
    /// A wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// One message from the page's console (`console.log`, uncaught errors, failed loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEntry {
    /// `INFO`, `WARNING`, `SEVERE`, ...
    pub level: String,
    /// As Chromium formats it: source URL, line:column, then the logged value(s).
    pub message: String,
}

/// A headless Chromium with a chromedriver and a profile of its own, all removed on drop.
///
/// The helpers are thin wrappers that turn CSS selectors into [`Locator::Css`] and errors into
/// [`BrowserError`]; anything else goes through [`Browser::client`].
#[derive(Debug)]
pub struct Browser {
    // Declared first so it is dropped before the process it talks to is killed.
    client: Client,
    driver: DriverProcess,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session.
    ///
    /// Binaries: `$BOTGATE_CHROMEDRIVER`, else `chromedriver` on `PATH`, else
    /// `/usr/bin/chromedriver`; `$BOTGATE_CHROMIUM`, else `chromium`, `chromium-browser` or
    /// `google-chrome` on `PATH`, else `/usr/bin/chromium`. The window is 1280x900.
    pub async fn start() -> Result<Browser, BrowserError> {
        let chromedriver = locate(
            "chromedriver",
            CHROMEDRIVER_ENV,
            std::env::var_os(CHROMEDRIVER_ENV),
            &["chromedriver"],
            "/usr/bin/chromedriver",
        )?;
        let chromium = locate(
            "chromium",
            CHROMIUM_ENV,
            std::env::var_os(CHROMIUM_ENV),
            &["chromium", "chromium-browser", "google-chrome"],
            "/usr/bin/chromium",
        )?;
        let mut driver = DriverProcess::spawn(&chromedriver)?;
        let port = driver.port().await?;
        driver.wait_ready(port).await?;
        let client = Client::with_capabilities_and_connector(
            &format!("http://127.0.0.1:{port}"),
            &capabilities(&chromium, &driver.profile()),
            HttpConnector::new(),
        )
        .await?;
        Ok(Browser { client, driver })
    }

    /// The WebDriver client, for everything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates and waits for the page's load event.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        Ok(self.client.goto(url).await?)
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, BrowserError> {
        self.client
            .wait()
            .at_most(timeout)
            .every(POLL_INTERVAL)
            .for_element(Locator::Css(css))
            .await
            .map_err(|error| match error {
                CmdError::WaitTimeout => BrowserError::Timeout {
                    what: format!("an element matching `{css}`"),
                    after: timeout,
                },
                other => BrowserError::Command(other),
            })
    }

    /// Polls `condition` until it yields true, or fails with [`BrowserError::Timeout`].
    ///
    /// The condition is an async closure, so it can ask the browser; a step that errors (the
    /// element is not there yet) should count as false:
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use botgate_testkit::browser::{Browser, BrowserError};
    /// # async fn example(browser: &Browser) -> Result<(), BrowserError> {
    /// let before = browser.text(".msg-bot:last-child .msg-body").await?;
    /// let before = &before;
    /// browser
    ///     .wait_until(Duration::from_secs(5), || async move {
    ///         browser
    ///             .text(".msg-bot:last-child .msg-body")
    ///             .await
    ///             .is_ok_and(|now| !now.is_empty() && now != *before)
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_until<F, Fut>(
        &self,
        timeout: Duration,
        mut condition: F,
    ) -> Result<(), BrowserError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if condition().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BrowserError::Timeout {
                    what: "the condition".to_owned(),
                    after: timeout,
                });
            }
            sleep(POLL_INTERVAL).await;
        }
    }

    /// Makes the frame of the `<iframe>` matching `css` the context of later commands.
    pub async fn enter_frame(&self, css: &str) -> Result<(), BrowserError> {
        let frame = self.client.find(Locator::Css(css)).await?;
        Ok(frame.enter_frame().await?)
    }

    /// Goes back to the frame's parent (the page, after one [`Self::enter_frame`]).
    pub async fn leave_frame(&self) -> Result<(), BrowserError> {
        Ok(self.client.enter_parent_frame().await?)
    }

    /// The rendered text of the first element matching `css` now (hidden text reads as empty).
    pub async fn text(&self, css: &str) -> Result<String, BrowserError> {
        let element = self.client.find(Locator::Css(css)).await?;
        Ok(element.text().await?)
    }

    /// Saves the viewport as a PNG at `path`, creating its directories.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> Result<(), BrowserError> {
        let path = path.as_ref();
        let png = self.client.screenshot().await?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BrowserError::Io {
                what: format!("create {}", parent.display()),
                source,
            })?;
        }
        std::fs::write(path, png).map_err(|source| BrowserError::Io {
            what: format!("write {}", path.display()),
            source,
        })
    }

    /// Console messages logged since the previous call (Chromium hands each one out once).
    pub async fn console(&self) -> Result<Vec<ConsoleEntry>, BrowserError> {
        let entries = self.client.issue_cmd(BrowserLog).await?;
        let entries = entries.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(entries
            .iter()
            .map(|entry| ConsoleEntry {
                level: string_field(entry, "level"),
                message: string_field(entry, "message"),
            })
            .collect())
    }

    /// Ends the session so Chromium exits on its own, then stops chromedriver.
    ///
    /// Dropping the value also stops everything, by killing it.
    pub async fn close(self) -> Result<(), BrowserError> {
        let Browser { client, driver } = self;
        let closed = client.close().await;
        drop(driver);
        Ok(closed?)
    }
}

/// `target/test-output/<test_name>/` of the workspace (or under `$CARGO_TARGET_DIR`), for
/// screenshots and other artifacts a person looks at after a run. Not created here.
pub fn output_dir(test_name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(manifest);
    // `join` keeps an absolute `CARGO_TARGET_DIR` as it is; a relative one is the workspace's.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    target.join("test-output").join(test_name)
}

/// chromedriver's process group, its output and the temporary profile directory.
#[derive(Debug)]
struct DriverProcess {
    child: Child,
    /// Dropping this closes the watchdog's pipe, which kills the process group.
    watchdog: Option<ChildStdin>,
    port: Option<tokio::sync::oneshot::Receiver<u16>>,
    output: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl DriverProcess {
    /// Spawns `chromedriver --port=0` behind the watchdog and starts draining its output.
    fn spawn(chromedriver: &Path) -> Result<DriverProcess, BrowserError> {
        let dir = temp_dir();
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).map_err(|source| BrowserError::Io {
            what: format!("create {}", profile.display()),
            source,
        })?;
        let spawned = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg(chromedriver)
            .arg("--port=0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(BrowserError::Io {
                    what: format!("spawn {}", chromedriver.display()),
                    source,
                });
            }
        };
        let watchdog = child.stdin.take();
        let stdout = child.stdout.take();
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut driver = DriverProcess {
            child,
            watchdog,
            port: Some(port_rx),
            output: Arc::clone(&output),
            dir,
        };
        if let Some(stdout) = stdout {
            // A thread, not a task: it must drain the pipe whatever the caller's runtime does,
            // or chromedriver and Chromium (which inherit it) block on a full pipe.
            std::thread::Builder::new()
                .name("chromedriver-output".to_owned())
                .spawn(move || drain(stdout, port_tx, &output))
                .map_err(|source| BrowserError::Io {
                    what: "spawn the chromedriver output thread".to_owned(),
                    source,
                })?;
        } else {
            driver.port = None;
        }
        Ok(driver)
    }

    fn profile(&self) -> PathBuf {
        self.dir.join("profile")
    }

    /// The port chromedriver reports once it listens.
    async fn port(&mut self) -> Result<u16, BrowserError> {
        let Some(port) = self.port.take() else {
            return Err(BrowserError::Driver(
                "its output is not readable".to_owned(),
            ));
        };
        match timeout(READY_DEADLINE, port).await {
            Ok(Ok(port)) => Ok(port),
            Ok(Err(_)) => Err(BrowserError::Driver(format!(
                "it exited without reporting a port; output:\n{}",
                self.output()
            ))),
            Err(_) => Err(BrowserError::Driver(format!(
                "no port reported within {READY_DEADLINE:?}; output:\n{}",
                self.output()
            ))),
        }
    }

    /// Polls `/status` until chromedriver says it is ready for a session.
    async fn wait_ready(&mut self, port: u16) -> Result<(), BrowserError> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if status_ready(port).await {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BrowserError::Driver(format!(
                    "it exited ({status}); output:\n{}",
                    self.output()
                )));
            }
            if Instant::now() >= deadline {
                return Err(BrowserError::Driver(format!(
                    "/status on port {port} was not ready within {READY_DEADLINE:?}; output:\n{}",
                    self.output()
                )));
            }
            sleep(POLL_INTERVAL).await;
        }
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // Kill the group now rather than leave it to the watchdog, so that nothing writes to the
        // profile any more once `wait` returns; the leader is not reaped yet, so its id is still
        // this group's.
        let group = self.child.id();
        let _ = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("kill -9 -{group} 2>/dev/null"))
            .status();
        self.watchdog = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads chromedriver's output line by line: keeps the first lines, reports the port.
fn drain(
    stdout: std::process::ChildStdout,
    port_tx: tokio::sync::oneshot::Sender<u16>,
    output: &Mutex<Vec<String>>,
) {
    let mut port_tx = Some(port_tx);
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bytes, not `lines()`: a line that is not UTF-8 must not stop the draining.
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if let Some(port) = parse_port(&text) {
            if let Some(sender) = port_tx.take() {
                let _ = sender.send(port);
            }
        }
        let mut kept = output.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < OUTPUT_LINES {
            kept.push(text);
        }
    }
}

/// The port in "ChromeDriver was started successfully on port 39281."
fn parse_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once(STARTED_MARKER)?;
    rest.trim_end_matches('.').trim().parse().ok()
}

/// True when `GET /status` answers with `"ready": true`.
async fn status_ready(port: u16) -> bool {
    let round_trip = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request =
            format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        // chromedriver says `Connection: close` but keeps the socket open: read until the body
        // is complete JSON instead of until EOF.
        let mut response = Vec::new();
        let mut chunk = [0_u8; 4096];
        let status: Value = loop {
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            response.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&response);
            if let Some((_, body)) = text.split_once("\r\n\r\n") {
                if let Ok(status) = serde_json::from_str(body.trim()) {
                    break status;
                }
            }
        };
        status["value"]["ready"].as_bool()
    };
    matches!(timeout(STATUS_TIMEOUT, round_trip).await, Ok(Some(true)))
}

/// What chromedriver is asked for: headless Chromium at `chromium`, console messages kept.
fn capabilities(chromium: &Path, profile: &Path) -> serde_json::Map<String, Value> {
    let args = [
        "--headless=new".to_owned(),
        // CI runs as root, where Chromium's sandbox refuses to start.
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        // Containers often have a 64 MB /dev/shm, too small for Chromium.
        "--disable-dev-shm-usage".to_owned(),
        "--window-size=1280,900".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".to_owned(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": chromium.to_string_lossy(), "args": args }),
    );
    capabilities.insert("goog:loggingPrefs".to_owned(), json!({ "browser": "ALL" }));
    capabilities
}

/// chromedriver's own command for the console log (not in W3C WebDriver, so not in fantoccini).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

fn string_field(entry: &Value, name: &str) -> String {
    entry[name].as_str().unwrap_or_default().to_owned()
}

/// The binary named by `env_value`, else the first of `names` on `PATH`, else `fallback`.
fn locate(
    what: &'static str,
    env_name: &str,
    env_value: Option<OsString>,
    names: &[&str],
    fallback: &str,
) -> Result<PathBuf, BrowserError> {
    if let Some(path) = env_value {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(BrowserError::Missing {
                what,
                looked: format!("{env_name}={} is not a file", path.display()),
            })
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if let Some(path) = on_path {
        return Ok(path);
    }
    let fallback = PathBuf::from(fallback);
    if fallback.is_file() {
        return Ok(fallback);
    }
    Err(BrowserError::Missing {
        what,
        looked: format!(
            "not {env_name}, not {} on PATH, not {}",
            names.join(" or "),
            fallback.display()
        ),
    })
}

/// A directory of its own for each browser, under the system temp dir.
fn temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    std::env::temp_dir().join(format!(
        "botgate-browser-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let error = locate(
            "chromedriver",
            CHROMEDRIVER_ENV,
            Some(OsString::from("/nonexistent/chromedriver")),
            &["chromedriver"],
            "/usr/bin/chromedriver",
        )
        .expect_err("a path that is not a file is an error, whatever is installed");
        let message = error.to_string();
        assert!(
            message.contains("apt-get install chromium chromium-driver (or run .ci/run)"),
            "{message}"
        );
        assert!(message.contains("/nonexistent/chromedriver"), "{message}");
    }

    #[test]
    fn the_port_comes_from_the_started_line() {
        assert_eq!(
            parse_port("ChromeDriver was started successfully on port 39281."),
            Some(39281)
        );
        assert_eq!(parse_port("Starting ChromeDriver 156.0 on port 0"), None);
    }

    #[test]
    fn output_dir_is_under_the_workspace_target() {
        let dir = output_dir("some_test");
        assert!(dir.ends_with("test-output/some_test"), "{}", dir.display());
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            let workspace = dir
                .ancestors()
                .nth(3)
                .expect("target/test-output/some_test");
            assert!(workspace.join("Cargo.lock").is_file(), "{}", dir.display());
        }
    }
}
