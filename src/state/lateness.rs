//! The probe-lateness histogram: how late probes start against their schedule.

use std::time::Duration;

/// The upper bounds of the probe-lateness histogram's buckets, in seconds.
pub(crate) const LATENESS_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How late probes start against their schedule (waiting for permits, a busy runtime).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lateness {
    /// Observations at or below each bucket's bound (not cumulative).
    pub buckets: [u64; LATENESS_BUCKETS.len()],
    /// The sum of all observations, in seconds.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

impl Lateness {
    pub(super) fn observe(&mut self, late: Duration) {
        let seconds = late.as_secs_f64();
        if let Some(bucket) = LATENESS_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}
