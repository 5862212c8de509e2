//! Retry backoff: exponential, capped, the same for every executor.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// How long to wait before attempt `attempt` (1-based; the first attempt waits nothing).
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_millis(350) };
        let delays: Vec<u128> = (1..=5).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, vec![0, 100, 200, 350, 350]);
        assert_eq!(b.delay(100), Duration::from_millis(350));
    }
}
