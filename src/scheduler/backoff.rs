//! The exponential backoff of connections and sites that reach no verdict: `backon`'s
//! builder (the `backoff` crate is unmaintained, RUSTSEC-2025-0012), with a random jitter
//! applied on top of each wait.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The jitter range every backoff wait is multiplied by.
pub(crate) const JITTER: (f64, f64) = (0.7, 1.3);

/// An exponential backoff on `backon`'s builder, with the jitter applied on top.
#[derive(Debug)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    steps: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles, and stops growing at `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        let builder = ExponentialBuilder::default()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_factor(2.0)
            .without_max_times();
        Backoff {
            steps: builder.build(),
            builder,
            max,
        }
    }

    /// The next wait, multiplied by `jitter` (a value in [`JITTER`]) and capped at the maximum.
    pub(crate) fn next(&mut self, jitter: f64) -> Duration {
        let base = self.steps.next().unwrap_or(self.max);
        base.mul_f64(jitter).min(self.max)
    }

    /// Back to the initial wait.
    pub(crate) fn reset(&mut self) {
        self.steps = self.builder.build();
    }

    /// Goes on from a wait that an earlier process reached: the next wait doubles it.
    pub(crate) fn resume_from(&mut self, reached: Duration) {
        self.reset();
        let base = reached.div_f64(JITTER.1);
        for _ in 0..64 {
            match self.steps.next() {
                Some(step) if step < base => {}
                _ => break,
            }
        }
    }
}

/// A random jitter factor in [`JITTER`].
pub(crate) fn jitter() -> f64 {
    JITTER.0 + fastrand::f64() * (JITTER.1 - JITTER.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(backoff.next(1.0), Duration::from_secs(10));
        assert_eq!(backoff.next(1.0), Duration::from_secs(20));
        assert_eq!(backoff.next(0.7), Duration::from_secs(28));
        assert_eq!(
            backoff.next(1.3),
            Duration::from_secs(60),
            "80s capped at 60s"
        );
        assert_eq!(backoff.next(1.0), Duration::from_secs(60));
        backoff.reset();
        assert_eq!(backoff.next(1.3), Duration::from_secs(13));
        for _ in 0..1000 {
            let j = jitter();
            assert!((JITTER.0..=JITTER.1).contains(&j), "{j}");
        }
    }

    #[test]
    fn a_backoff_goes_on_from_where_an_earlier_process_left_it() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(600));
        backoff.resume_from(Duration::from_secs(40));
        assert_eq!(backoff.next(1.0), Duration::from_secs(80));
        backoff.resume_from(Duration::from_secs(52)); // 40 s with the largest jitter
        assert_eq!(backoff.next(1.0), Duration::from_secs(80));
        backoff.resume_from(Duration::from_secs(10_000));
        assert_eq!(backoff.next(1.0), Duration::from_secs(600));
    }
}
