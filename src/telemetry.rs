//! Log setup: human-readable on a terminal, one JSON object per line otherwise (containers).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins when set; otherwise `default_level`. Logs go to stderr so that stdout stays
/// clean for commands whose output is data (`chat`, `check-config`).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests that start several apps) is harmless; ignore the error it returns.
    if std::io::stderr().is_terminal() {
        let _ = builder.try_init();
    } else {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    }
}
