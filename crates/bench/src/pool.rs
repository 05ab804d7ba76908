//! Pools of prepared data that measured requests consume: TOTP factors (each accepts a code
//! only for a step newer than the last one it accepted, and each challenge verifies once) and
//! "wrong code" attempt slots (5 evaluated codes per challenge, failure limits per factor and
//! per user).
//!
//! The server reads the real clock, so codes are computed here from the wall clock at the
//! moment a request is sent. With the default window of ±1 step, at step T the server takes
//! codes for T-1, T and T+1; a factor whose last accepted step is L can therefore take up to
//! three codes (steps max(L+1, T-1) ..= T+1, in increasing order, one request at a time) before
//! it has to wait for the clock. A factor is held by one task at a time, so its codes reach the
//! server in order.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tessera_core::totp::{code_for_step, step_at, TotpSecret};

/// The server's default challenge lifetime is 10 minutes; older challenges are thrown away.
const CHALLENGE_MAX_AGE: Duration = Duration::from_secs(540);
const STEP_MS: i64 = 30_000;
/// Step T-1 is used only while this much of step T is left, so the code cannot age out
/// while the request is in flight.
const MARGIN_MS: i64 = 2_000;

/// Milliseconds since the Unix epoch from the wall clock.
///
/// The server computes TOTP steps from its real clock, so the bench must too; this is the one
/// place the bench reads wall-clock time (the workspace forbids `SystemTime::now` so that
/// server code goes through its injected clock, which the bench does not have).
#[allow(clippy::disallowed_methods)]
pub(crate) fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The steps the server accepts now, keeping a margin before the oldest one expires.
fn usable_steps(now_ms: i64) -> (i64, i64) {
    let t = step_at(now_ms.div_euclid(1000));
    let into = now_ms - t * STEP_MS;
    let lowest = if into < STEP_MS - MARGIN_MS { t - 1 } else { t };
    (lowest, t + 1)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TOTP factor the bench knows the secret of.
pub(crate) struct Factor {
    pub id: String,
    pub secret: TotpSecret,
    /// The newest step the server accepted (or may have accepted) for it.
    pub last_step: i64,
    /// Unverified challenges, oldest first.
    pub challenges: VecDeque<(String, Instant)>,
    /// The user's email (sign-in pools).
    pub email: String,
}

impl Factor {
    pub(crate) fn new(id: String, secret: TotpSecret, email: String) -> Self {
        Factor {
            id,
            secret,
            last_step: -1,
            challenges: VecDeque::new(),
            email,
        }
    }

    /// The step to use for a code sent now, if the server would accept one.
    pub(crate) fn next_step(&self, now_ms: i64) -> Option<i64> {
        let (lo, hi) = usable_steps(now_ms);
        let s = (self.last_step + 1).max(lo);
        (s <= hi).then_some(s)
    }

    /// The code for `step`, remembering that the step is spent.
    pub(crate) fn use_step(&mut self, step: i64) -> String {
        self.last_step = self.last_step.max(step);
        code_for_step(&self.secret, step)
    }

    /// Codes it can surely still take before the clock moves on (T and T+1 only: T-1 may age
    /// out before the run reaches this factor).
    fn sure_steps(&self, now_ms: i64) -> usize {
        let t = step_at(now_ms.div_euclid(1000));
        let from = (self.last_step + 1).max(t);
        usize::try_from(t + 2 - from).unwrap_or(0)
    }

    fn drop_stale_challenges(&mut self) {
        while self
            .challenges
            .front()
            .is_some_and(|(_, at)| at.elapsed() > CHALLENGE_MAX_AGE)
        {
            self.challenges.pop_front();
        }
    }

    /// The oldest live challenge, consumed.
    pub(crate) fn take_challenge(&mut self) -> Option<String> {
        self.drop_stale_challenges();
        self.challenges.pop_front().map(|(id, _)| id)
    }
}

/// Factors waiting to be used. `with_challenges`: each use also needs a prepared challenge
/// (the verify operations); otherwise the operation creates its own (sign-in).
pub(crate) struct FactorPool {
    with_challenges: bool,
    ready: Mutex<VecDeque<Factor>>,
    /// Factors with no usable step or no challenge left; reconsidered between runs, or when
    /// `ready` runs dry.
    parked: Mutex<Vec<Factor>>,
}

impl FactorPool {
    pub(crate) fn new(with_challenges: bool) -> Self {
        FactorPool {
            with_challenges,
            ready: Mutex::new(VecDeque::new()),
            parked: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn add(&self, f: Factor) {
        lock(&self.ready).push_back(f);
    }

    fn usable(&self, f: &mut Factor, now_ms: i64) -> bool {
        if self.with_challenges {
            f.drop_stale_challenges();
            if f.challenges.is_empty() {
                return false;
            }
        }
        f.next_step(now_ms).is_some()
    }

    /// A factor that can take a code now (and has a challenge, if needed); `None` when the
    /// pool is exhausted.
    pub(crate) fn take(&self) -> Option<Factor> {
        let now = unix_millis();
        for _ in 0..2 {
            {
                let mut ready = lock(&self.ready);
                while let Some(mut f) = ready.pop_front() {
                    if self.usable(&mut f, now) {
                        return Some(f);
                    }
                    lock(&self.parked).push(f);
                }
            }
            // Dry: the clock may have moved on since the parked ones were parked.
            self.unpark();
        }
        None
    }

    pub(crate) fn give_back(&self, f: Factor) {
        lock(&self.ready).push_back(f);
    }

    /// Moves every parked factor back to `ready` (between runs).
    pub(crate) fn unpark(&self) {
        let parked = std::mem::take(&mut *lock(&self.parked));
        let now = unix_millis();
        let mut keep = Vec::new();
        let mut ready = lock(&self.ready);
        for mut f in parked {
            if self.usable(&mut f, now) {
                ready.push_back(f);
            } else {
                keep.push(f);
            }
        }
        drop(ready);
        lock(&self.parked).extend(keep);
    }

    /// Uses the pool can surely serve from now on (without relying on the clock moving).
    pub(crate) fn capacity(&self) -> usize {
        self.unpark();
        let now = unix_millis();
        let count = |f: &Factor| {
            let steps = f.sure_steps(now);
            if self.with_challenges {
                steps.min(f.challenges.len())
            } else {
                steps
            }
        };
        let ready = lock(&self.ready);
        let parked = lock(&self.parked);
        ready.iter().chain(parked.iter()).map(count).sum()
    }

    /// Factors with more sure steps than challenges: `(factor id, challenges missing)`.
    pub(crate) fn missing_challenges(&self) -> Vec<(String, usize)> {
        let now = unix_millis();
        let ready = lock(&self.ready);
        let parked = lock(&self.parked);
        ready
            .iter()
            .chain(parked.iter())
            .filter_map(|f| {
                let missing = f.sure_steps(now).saturating_sub(f.challenges.len());
                (missing > 0).then(|| (f.id.clone(), missing))
            })
            .collect()
    }

    /// Adds prepared challenges to their factors.
    pub(crate) fn add_challenges(&self, made: Vec<(String, String)>) {
        let mut by_factor: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for (f, c) in made {
            by_factor.entry(f).or_default().push(c);
        }
        let now = Instant::now();
        let mut ready = lock(&self.ready);
        let mut parked = lock(&self.parked);
        for f in ready.iter_mut().chain(parked.iter_mut()) {
            if let Some(cs) = by_factor.remove(&f.id) {
                f.challenges.extend(cs.into_iter().map(|c| (c, now)));
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.ready).len() + lock(&self.parked).len()
    }
}

/// One wrong-code attempt: the verify path and its body, prepared.
#[derive(Clone)]
pub(crate) struct Slot {
    pub path: String,
    pub body: bytes::Bytes,
}

/// Wrong-code attempts to spend, each exactly once, interleaved so that consecutive attempts
/// hit different challenges.
#[derive(Default)]
pub(crate) struct Slots {
    items: Mutex<VecDeque<Slot>>,
}

impl Slots {
    /// `attempts` attempts on each challenge, round-robin.
    pub(crate) fn add(&self, challenges: &[Slot], attempts: usize) {
        let mut items = lock(&self.items);
        for _ in 0..attempts {
            items.extend(challenges.iter().cloned());
        }
    }

    pub(crate) fn take(&self) -> Option<Slot> {
        lock(&self.items).pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.items).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_window_and_never_repeat() {
        let secret = TotpSecret::generate();
        let mut f = Factor::new("f".into(), secret, String::new());
        let t = 1_000_000;
        let early = t * STEP_MS + 1_000;
        assert_eq!(f.next_step(early), Some(t - 1));
        f.use_step(t - 1);
        assert_eq!(f.next_step(early), Some(t));
        f.use_step(t);
        f.use_step(t + 1);
        assert_eq!(f.next_step(early), None, "three codes per step at most");
        assert_eq!(f.next_step((t + 1) * STEP_MS), Some(t + 2));
        let late = t * STEP_MS + STEP_MS - 500;
        let g = Factor::new("g".into(), TotpSecret::generate(), String::new());
        assert_eq!(
            g.next_step(late),
            Some(t),
            "no T-1 near the end of the step"
        );
        assert_eq!(g.sure_steps(early), 2);
    }

    #[test]
    fn a_factor_without_challenges_is_parked() {
        let pool = FactorPool::new(true);
        let mut f = Factor::new("f".into(), TotpSecret::generate(), String::new());
        pool.add(Factor::new(
            "g".into(),
            TotpSecret::generate(),
            String::new(),
        ));
        f.challenges.push_back(("c".into(), Instant::now()));
        pool.add(f);
        assert_eq!(pool.capacity(), 1);
        let got = pool.take().map(|f| f.id);
        assert_eq!(got.as_deref(), Some("f"));
        assert!(pool.take().is_none());
        assert_eq!(
            pool.missing_challenges().len(),
            1,
            "g still wants challenges"
        );
    }
}
