//! Nearest-rank percentiles of latencies, as the platform scenarios report them.

use std::time::Duration;

/// Nearest-rank percentiles of a set of durations.
pub struct Spread {
    sorted: Vec<Duration>,
}

impl Spread {
    pub fn new(mut durations: Vec<Duration>) -> Self {
        durations.sort_unstable();
        Spread { sorted: durations }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The duration below which `quantile` (0..=1) of them fall, in ms; 0 when there are none.
    pub fn ms(&self, quantile: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = (quantile * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1].as_secs_f64() * 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.sorted
            .last()
            .map_or(0.0, |max| max.as_secs_f64() * 1000.0)
    }

    /// "12.3 / 45.6 / 78.9 ms" (p50 / p99 / max).
    pub fn text(&self) -> String {
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.max_ms()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_nearest_rank() {
        let spread = Spread::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!((spread.ms(0.5), spread.ms(0.99)), (50.0, 99.0));
        assert_eq!(spread.max_ms(), 100.0);
        assert_eq!(Spread::new(Vec::new()).ms(0.5), 0.0);
    }
}
