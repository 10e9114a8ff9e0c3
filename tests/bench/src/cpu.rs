//! Where the CPU went: CPU time per process from `/proc`, and `perf record` on botgate.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux port).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time a process has used so far, all threads, user and system.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let (user, system) = cpu_split(pid)?;
    Ok(user + system)
}

/// CPU time a process has used so far, all threads: (user, system).
pub fn cpu_split(pid: u32) -> anyhow::Result<(Duration, Duration)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line; the first after ')' is field 3.
    let ticks = |field: &str| {
        Duration::from_secs_f64(field.parse::<f64>().unwrap_or(0.0) / TICKS_PER_SECOND)
    };
    match fields.get(11..13) {
        Some([user, system]) => Ok((ticks(user), ticks(system))),
        _ => bail!("short /proc stat line"),
    }
}

/// The pids of this process's children running `command` (the test kit's `redis-server`: one,
/// or a cluster's three), in pid order.
fn children_named(command: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == command)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Labels of a cluster's nodes in the CPU line.
const NODE_LABELS: [&str; 3] = ["redis-1", "redis-2", "redis-3"];

/// CPU used by the processes of a run: botgate, redis-server, and the bench itself (load
/// generator and fakes), to see who had the two cores.
pub struct CpuMeter {
    processes: Vec<(&'static str, u32)>,
}

/// CPU time per process at one instant, in [`CpuMeter`] order.
pub struct CpuSnapshot(Vec<Duration>);

impl CpuMeter {
    pub fn new(botgate: u32) -> Self {
        let mut processes = vec![("botgate", botgate)];
        match children_named("redis-server").as_slice() {
            [] => {}
            [redis] => processes.push(("redis", *redis)),
            nodes => processes.extend(NODE_LABELS.iter().copied().zip(nodes.iter().copied())),
        }
        processes.push(("bench", std::process::id()));
        CpuMeter { processes }
    }

    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot(
            self.processes
                .iter()
                .map(|&(_, pid)| cpu_time(pid).unwrap_or_default())
                .collect(),
        )
    }

    /// Cores kept busy by each process between two snapshots `window` apart.
    pub fn cores(
        &self,
        before: &CpuSnapshot,
        after: &CpuSnapshot,
        window: Duration,
    ) -> Vec<(&'static str, f64)> {
        self.processes
            .iter()
            .zip(before.0.iter().zip(&after.0))
            .map(|(&(label, _), (before, after))| {
                let used = after.saturating_sub(*before).as_secs_f64();
                (label, used / window.as_secs_f64().max(f64::EPSILON))
            })
            .collect()
    }
}

/// `perf record` (DWARF call graphs: release builds keep no frame pointers) attached to a
/// process for a fixed time, writing `output`.
pub struct Profiler {
    child: Child,
    output: PathBuf,
}

impl Profiler {
    pub fn attach(pid: u32, duration: Duration, output: &Path) -> anyhow::Result<Profiler> {
        let child = Command::new("perf")
            .args([
                "record",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(output)
            .args(["--", "sleep", &duration.as_secs_f64().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn perf (is it installed?)")?;
        Ok(Profiler {
            child,
            output: output.to_owned(),
        })
    }

    /// Waits for perf to write its file.
    pub async fn finish(self) -> anyhow::Result<PathBuf> {
        let output = self
            .child
            .wait_with_output()
            .await
            .context("wait for perf")?;
        if !output.status.success() {
            bail!(
                "perf record failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(self.output)
    }
}
