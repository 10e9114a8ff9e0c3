//! A private three-master Redis Cluster on free loopback ports, killed with the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::{sleep, timeout_at, Instant};

use crate::redis::{
    exit_error, find_binary, free_port, ping, read_log, temp_dir, LaunchError, POLL_INTERVAL,
    PORT_ATTEMPTS, READY_DEADLINE, WATCHDOG_SCRIPT,
};

/// Environment variable naming another `redis-cli` binary to run.
const CLI_ENV: &str = "REDIS_CLI_BIN";
/// How long `start` waits for `redis-cli --cluster create` and for every node to agree.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);
/// Redis listens for the cluster bus on the client port plus this.
const BUS_PORT_OFFSET: u16 = 10_000;
const MASTERS: usize = 3;

/// Three `redis-server --cluster-enabled yes` masters sharing all 16384 slots, no replicas.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
}

/// One master: dropping it kills the server and removes its directory.
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Child,
    /// Held only so that the watchdog's pipe stays open while the node lives.
    _watchdog: Option<ChildStdin>,
}

impl RedisCluster {
    /// Starts three cluster-enabled masters on free `127.0.0.1` ports, joins them with
    /// `redis-cli --cluster create` and waits until every node reports `cluster_state:ok`
    /// with all 16384 slots assigned.
    ///
    /// Panics with install instructions if `redis-server` or `redis-cli` is missing, and with
    /// the logs or `CLUSTER INFO` if the cluster does not form.
    pub async fn start() -> RedisCluster {
        let server = find_binary();
        let cli = find_cli();
        let mut nodes = Vec::with_capacity(MASTERS);
        while nodes.len() < MASTERS {
            nodes.push(start_node(&server, &nodes).await);
        }
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        cluster.create(&cli, deadline).await;
        cluster.wait_until_ok(deadline).await;
        cluster
    }

    /// The `[store]` lines that point botgate at this cluster: every node as a seed, and the
    /// hash-tag key prefix a cluster needs.
    pub fn store_toml(&self) -> String {
        format!(
            "redis_url = \"{}\"\ncluster = true\nkey_prefix = \"{{botgate}}\"",
            self.urls().join(",")
        )
    }

    /// The seed URLs, one per node: `redis://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.ports().into_iter().map(node_url).collect()
    }

    /// The first node's URL; a cluster client discovers the other nodes from it.
    pub fn url(&self) -> String {
        node_url(self.nodes[0].port)
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The port of the master that owns the slot of `key`.
    pub async fn owner_port(&self, key: &str) -> u16 {
        let mut connection = connect(self.nodes[0].port).await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("CLUSTER KEYSLOT");
        self.slot_ranges()
            .await
            .into_iter()
            .find(|&(first, last, _)| (first..=last).contains(&slot))
            .map(|(_, _, port)| port)
            .unwrap_or_else(|| panic!("no master owns slot {slot} of {key:?}"))
    }

    /// A plain (non-cluster) connection to the master that owns `key`'s slot, for assertions.
    pub async fn connection_for(&self, key: &str) -> MultiplexedConnection {
        connect(self.owner_port(key).await).await
    }

    /// How many keys matching `pattern` each master holds, in node order (`KEYS`: a test's
    /// handful of keys, never a production keyspace).
    pub async fn keys_per_node(&self, pattern: &str) -> Vec<usize> {
        let mut counts = Vec::with_capacity(self.nodes.len());
        for port in self.ports() {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut connect(port).await)
                .await
                .expect("KEYS");
            counts.push(keys.len());
        }
        counts
    }

    /// `(first slot, last slot, master port)` for every range, from the first node's view.
    async fn slot_ranges(&self) -> Vec<(u16, u16, u16)> {
        let mut connection = connect(self.nodes[0].port).await;
        let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut connection)
            .await
            .expect("CLUSTER SLOTS");
        let number =
            |value: Option<&Value>| value.and_then(|v| redis::from_redis_value_ref(v).ok());
        // Each entry is [first, last, [ip, port, id, ...] of the master, ...replicas].
        let parse = |range: &Vec<Value>| match (range.first(), range.get(1), range.get(2)) {
            (first, last, Some(Value::Array(master))) => {
                Some((number(first)?, number(last)?, number(master.get(1))?))
            }
            _ => None,
        };
        let parsed = ranges.iter().map(parse).collect::<Option<Vec<_>>>();
        parsed.unwrap_or_else(|| panic!("unexpected CLUSTER SLOTS reply: {ranges:?}"))
    }

    async fn create(&self, cli: &str, deadline: Instant) {
        let run = Command::new(cli)
            .args(["--cluster", "create"])
            .args(self.ports().iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match timeout_at(deadline, run).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => panic!("run {cli} --cluster create: {error}"),
            Err(_) => panic!("{cli} --cluster create did not finish within {CLUSTER_DEADLINE:?}"),
        };
        if !output.status.success() {
            panic!(
                "{cli} --cluster create failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Polls `CLUSTER INFO` on every node: `redis-cli` returns once the slot configs agree, but
    /// a master keeps `cluster_state:fail` for its first 2 s (Redis's `CLUSTER_WRITABLE_DELAY`).
    async fn wait_until_ok(&self, deadline: Instant) {
        let mut connections = join_all(self.nodes.iter().map(|node| connect(node.port))).await;
        loop {
            let infos = join_all(connections.iter_mut().map(cluster_info)).await;
            let ready = infos.iter().all(|info| {
                has_line(info, "cluster_state:ok") && has_line(info, "cluster_slots_ok:16384")
            });
            if ready {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the cluster on ports {:?} was not ok within {CLUSTER_DEADLINE:?}; \
                     CLUSTER INFO per node:\n{}",
                    self.ports(),
                    infos.join("\n---\n")
                );
            }
            sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Launches one master on a port whose bus port is free too, retrying when either is taken.
async fn start_node(binary: &str, others: &[Node]) -> Node {
    for attempt in 1..=PORT_ATTEMPTS {
        match launch(binary, cluster_port(others)).await {
            Ok(node) => return node,
            Err(LaunchError::PortTaken) if attempt < PORT_ATTEMPTS => continue,
            Err(LaunchError::PortTaken) => panic!(
                "redis-server: every one of {PORT_ATTEMPTS} free port pairs was taken before it bound"
            ),
            Err(LaunchError::Other(message)) => panic!("{message}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// A free port whose bus port (+10000) fits below 65536, is free too and clashes with no node.
fn cluster_port(others: &[Node]) -> u16 {
    let used = |port: u16| {
        others
            .iter()
            .any(|node| port == node.port || port == node.port + BUS_PORT_OFFSET)
    };
    let bus_free = |bus: u16| !used(bus) && std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok();
    loop {
        let port = free_port();
        if !used(port) && port.checked_add(BUS_PORT_OFFSET).is_some_and(bus_free) {
            return port;
        }
    }
}

async fn launch(binary: &str, port: u16) -> Result<Node, LaunchError> {
    let dir = temp_dir();
    let log_path = dir.join("redis.log");
    let (stdout_log, stderr_log) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::File::create(&log_path))
        .and_then(|log| Ok((log.try_clone()?, log)))
        .map_err(|error| LaunchError::Other(format!("create {}: {error}", log_path.display())))?;
    let spawned = Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .arg("--cluster-config-file")
        .arg(dir.join("nodes.conf"))
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(stdout_log))
        .stderr(Stdio::from(stderr_log))
        .kill_on_drop(true)
        .spawn();
    let mut child = spawned.map_err(|error| {
        let _ = std::fs::remove_dir_all(&dir);
        LaunchError::Other(format!("spawn sh for redis-server: {error}"))
    })?;
    let watchdog = child.stdin.take();
    let mut node = Node {
        port,
        dir,
        child,
        _watchdog: watchdog,
    };

    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        match node.child.try_wait() {
            Ok(Some(status)) => return Err(exit_error(status, &log_path)),
            Ok(None) => {}
            Err(error) => return Err(LaunchError::Other(format!("poll redis: {error}"))),
        }
        if ping(port).await {
            return Ok(node);
        }
        if Instant::now() >= deadline {
            return Err(LaunchError::Other(format!(
                "cluster redis-server on port {port} did not answer PING within \
                 {READY_DEADLINE:?}; log:\n{}",
                read_log(&log_path)
            )));
        }
        sleep(POLL_INTERVAL).await;
    }
}

async fn cluster_info(connection: &mut MultiplexedConnection) -> String {
    let reply = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(connection)
        .await;
    reply.unwrap_or_else(|error| format!("(CLUSTER INFO failed: {error})"))
}

fn has_line(text: &str, wanted: &str) -> bool {
    text.lines().any(|line| line.trim() == wanted)
}

fn node_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

async fn connect(port: u16) -> MultiplexedConnection {
    redis::Client::open(node_url(port))
        .expect("parse the redis URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|error| panic!("connect to the cluster node on port {port}: {error}"))
}

/// `$REDIS_CLI_BIN`, or the `redis-cli` found on `PATH`; panics with install help otherwise.
fn find_cli() -> String {
    if let Ok(binary) = std::env::var(CLI_ENV) {
        assert!(
            Path::new(&binary).is_file(),
            "{CLI_ENV}={binary} is not a file"
        );
        return binary;
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join("redis-cli"))
        .find(|candidate| candidate.is_file())
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_else(|| {
            panic!(
                "redis-cli was not found on PATH; the cluster tests need it to join their nodes. \
                 Install it with `apt-get install redis-server` (Debian/Ubuntu; it pulls in \
                 redis-tools) or `brew install redis` (macOS), or point {CLI_ENV} at the binary."
            )
        })
}

#[cfg(test)]
mod tests {
    use redis::AsyncCommands;

    use super::*;

    #[tokio::test]
    async fn three_masters_share_every_slot() {
        let cluster = RedisCluster::start().await;

        let ranges = cluster.slot_ranges().await;
        for port in cluster.ports() {
            let info = cluster_info(&mut connect(port).await).await;
            assert!(has_line(&info, "cluster_state:ok"), "node {port}: {info}");
            let owns_slots = ranges.iter().any(|&(_, _, owner)| owner == port);
            assert!(owns_slots, "master {port} owns no slot: {ranges:?}");
        }

        assert_eq!(
            cluster.owner_port("{a}x").await,
            cluster.owner_port("{a}y").await
        );
        let mut connection = cluster.connection_for("{a}x").await;
        let () = connection.set("{a}x", "round trip").await.unwrap();
        let value: String = connection.get("{a}x").await.unwrap();
        assert_eq!(value, "round trip");
    }
}
