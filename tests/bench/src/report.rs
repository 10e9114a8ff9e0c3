//! What a scenario prints: a compact table for people and one JSON line for the README.

// The bench is a command-line tool: standard output is its interface.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use serde_json::{Map, Value};

use crate::load::{Failures, Outcome};

/// One scenario's results.
pub struct Report {
    scenario: &'static str,
    /// The settings that produced the numbers, e.g. "64 connections, 2 workers, redis".
    setup: String,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
    /// What went wrong: failed checks, failure samples, botgate's log.
    problems: Vec<String>,
    /// botgate's last log lines, shown only when a check failed.
    log: String,
    skipped: Option<String>,
}

impl Report {
    pub fn new(scenario: &'static str, setup: String) -> Self {
        let mut json = Map::new();
        json.insert("scenario".into(), scenario.into());
        Report {
            scenario,
            setup,
            rows: Vec::new(),
            json,
            problems: Vec::new(),
            log: String::new(),
            skipped: None,
        }
    }

    /// A scenario that could not run for a reason that is not a failure.
    pub fn skipped(scenario: &'static str, reason: String) -> Self {
        let mut report = Report::new(scenario, String::new());
        report.json.insert("skipped".into(), reason.clone().into());
        report.skipped = Some(reason);
        report
    }

    /// A machine-readable value (JSON only).
    pub fn value(&mut self, key: &str, value: impl Into<Value>) {
        self.json.insert(key.to_owned(), value.into());
    }

    /// A line of the table.
    pub fn row(&mut self, label: &str, text: String) {
        self.rows.push((label.to_owned(), text));
    }

    /// A failed check: printed, and the run exits non-zero.
    pub fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    /// botgate's log, to show if the run failed.
    pub fn log(&mut self, log: String) {
        self.log = log;
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// Rows and values for a load run's throughput, latency and failures.
    pub fn load(&mut self, outcome: &Outcome, rate_label: &str) {
        let (p50, p99, max) = (
            outcome.percentile_ms(0.50),
            outcome.percentile_ms(0.99),
            outcome.max_ms(),
        );
        self.row(
            rate_label,
            format!(
                "{:.0}  ({} in {:.1} s)",
                outcome.per_second(),
                outcome.counted(),
                outcome.elapsed.as_secs_f64()
            ),
        );
        self.row(
            "latency p50/p99/max",
            format!("{p50:.2} / {p99:.2} / {max:.2} ms"),
        );
        self.row("errors", errors_text(&outcome.failures));
        self.value("messages", outcome.counted());
        self.value("messages_per_sec", round(outcome.per_second(), 0));
        self.value("p50_ms", round(p50, 2));
        self.value("p99_ms", round(p99, 2));
        self.value("max_ms", round(max, 2));
        self.value("errors", outcome.failures.total());
        if outcome.failures.total() > 0 {
            self.problem(format!(
                "{} failed requests; first: {}",
                outcome.failures.total(),
                outcome.failures.samples.join(" | ")
            ));
        }
    }

    /// How many requests the load generator had to build during the run, having built
    /// `prepared` in `build_time` before it (for `--max-rate max_rate`).
    pub fn built(&mut self, outcome: &Outcome, prepared: u64, build_time: Duration, max_rate: u64) {
        self.row(
            "requests built on the fly",
            format!(
                "{} of {} ({prepared} built in {:.1} s before the run, for --max-rate {max_rate})",
                outcome.built_on_the_fly,
                outcome.sent,
                build_time.as_secs_f64(),
            ),
        );
    }

    /// Who kept the cores busy during `window`, and the CPU botgate and the bench (load
    /// generator and fakes: what botgate's budget loses to the harness) spent per message.
    pub fn cpu(&mut self, cores: &[(&'static str, f64)], window: Duration, messages: u64) {
        let mut text: Vec<String> = cores
            .iter()
            .map(|(label, cores)| format!("{label} {cores:.2}"))
            .collect();
        for (label, cores) in cores {
            self.value(&format!("cpu_{label}"), round(*cores, 2));
        }
        for process in ["botgate", "bench"] {
            if let Some((_, busy)) = cores.iter().find(|(label, _)| *label == process) {
                let per_message = busy * window.as_secs_f64() * 1e6 / messages.max(1) as f64;
                text.push(format!("{process} {per_message:.0} µs CPU per message"));
                self.value(
                    &format!("{process}_cpu_us_per_message"),
                    round(per_message, 0),
                );
            }
        }
        self.row("CPU (cores busy)", text.join(", "));
    }

    pub fn print(&self) {
        if let Some(reason) = &self.skipped {
            println!("{}: skipped: {reason}", self.scenario);
        } else {
            println!("{}  ({})", self.scenario, self.setup);
            let width = self
                .rows
                .iter()
                .map(|(label, _)| label.len())
                .max()
                .unwrap_or(0);
            for (label, text) in &self.rows {
                println!("  {label:<width$}  {text}");
            }
            for problem in &self.problems {
                println!("  FAILED: {problem}");
            }
            if !self.problems.is_empty() && !self.log.is_empty() {
                println!("  botgate's log (last lines):");
                for line in self.log.lines() {
                    println!("    {line}");
                }
            }
        }
        println!("{}", Value::Object(self.json.clone()));
    }
}

fn errors_text(failures: &Failures) -> String {
    if failures.total() == 0 {
        return "0".to_owned();
    }
    format!(
        "{}  (status {}, wrong reply {}, timeout {}, connection {}, build {})",
        failures.total(),
        failures.status,
        failures.reply,
        failures.timeout,
        failures.io,
        failures.build
    )
}

/// MiB with one decimal, from KiB.
pub fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

/// "✓" or "✗" for a target check.
pub fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}
