//! At most one thing per period: how often a connection's upload progress is logged.

use std::time::{Duration, Instant};

/// Says "due" at most once per `period`, the first time at once.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    period: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// A throttle that has never said "due".
    pub(crate) fn new(period: Duration) -> Throttle {
        Throttle { period, last: None }
    }

    /// Whether `period` has passed since the last time this said so (or it never
    /// did); if so, counts from `now`.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        let due = match self.last {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.period,
        };
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_period_from_the_first() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        let at = |s: u64| t0 + Duration::from_secs(s);
        let said: Vec<u64> = (0..=25).filter(|&s| t.due(at(s))).collect();
        assert_eq!(said, vec![0, 10, 20]);
    }
}
