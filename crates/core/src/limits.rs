//! Rate limits as GCRA (generic cell rate algorithm) parameters.
//!
//! A limit of `count` events per `window` becomes an emission interval `window / count`; the
//! store keeps one "theoretical arrival time" (TAT) per limited thing and charges an event
//! with one conditional UPDATE (see the MFA migration).
//!
//! The rule exists once per language: [`gcra_allows`] and [`gcra_next`] here (SQLite calls
//! them as the SQL functions `tessera_gcra_allows` / `tessera_gcra_next`, registered on every
//! connection), and the PostgreSQL functions of the same names in
//! `crates/store/sql/verify_attempt.pgsql`. A store test checks the two agree.

/// Whether one more event at `now` fits a limit whose stored TAT is `tat`: the TAT it would
/// leave may run at most one window ahead of `now`.
pub fn gcra_allows(tat: i64, now: i64, interval_ms: i64, window_ms: i64) -> bool {
    gcra_next(tat, now, interval_ms) - now <= window_ms
}

/// The TAT after charging one event at `now`: time already owed is never forgiven, idle time
/// is never banked beyond `now`.
pub fn gcra_next(tat: i64, now: i64, interval_ms: i64) -> i64 {
    tat.max(now).saturating_add(interval_ms)
}

/// `count` events per `window_ms`, sliding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: i64,
    pub window_ms: i64,
}

impl Rate {
    pub const fn new(count: i64, window_ms: i64) -> Self {
        Rate { count, window_ms }
    }

    /// Milliseconds one event "costs".
    pub fn interval_ms(self) -> i64 {
        (self.window_ms / self.count.max(1)).max(1)
    }

    /// Whether an event at `now` fits, given the stored `tat` (same rule as the SQL).
    pub fn allows(self, tat: i64, now: i64) -> bool {
        gcra_allows(tat, now, self.interval_ms(), self.window_ms)
    }

    /// The TAT after charging one event at `now`.
    pub fn charge(self, tat: i64, now: i64) -> i64 {
        gcra_next(tat, now, self.interval_ms())
    }

    /// Whole seconds until an event would fit again (for `Retry-After`), at least 1.
    pub fn retry_after_secs(self, tat: i64, now: i64) -> i64 {
        let wait_ms = tat.max(now) + self.interval_ms() - self.window_ms - now;
        ((wait_ms + 999) / 1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_count_events_fit_in_a_burst_then_one_per_interval() {
        let r = Rate::new(10, 15 * 60 * 1000);
        let now = 1_000_000;
        let mut tat = 0;
        for i in 0..10 {
            assert!(r.allows(tat, now), "event {i}");
            tat = r.charge(tat, now);
        }
        assert!(!r.allows(tat, now), "the 11th is refused");
        let wait = r.retry_after_secs(tat, now);
        assert_eq!(wait, 90, "one interval (15 min / 10)");
        assert!(!r.allows(tat, now + wait * 1000 - 1));
        assert!(r.allows(tat, now + wait * 1000));
    }

    #[test]
    fn after_a_full_window_of_quiet_the_whole_burst_is_back() {
        let r = Rate::new(5, 600_000);
        let mut tat = 0;
        for _ in 0..5 {
            tat = r.charge(tat, 0);
        }
        assert!(!r.allows(tat, 0));
        let mut t2 = tat;
        for i in 0..5 {
            assert!(r.allows(t2, 600_000), "event {i}");
            t2 = r.charge(t2, 600_000);
        }
        assert!(!r.allows(t2, 600_000));
    }
}
