//! WorkOS-style identifiers: a type prefix, an underscore and a 26-character ULID.
//!
//! ULIDs sort by creation time, which is what list pagination orders by; the random part
//! makes them unguessable enough that ids are not secrets but not enumerable either.

/// Prefixes of every object type Tessera creates.
pub mod prefix {
    pub const USER: &str = "user";
    pub const FACTOR: &str = "auth_factor";
    pub const CHALLENGE: &str = "auth_challenge";
    pub const API_KEY: &str = "key";
    pub const CLIENT: &str = "client";
    pub const EVENT: &str = "event";
    pub const SESSION: &str = "session";
    pub const BROWSER_SESSION: &str = "browser_session";
}

/// A fresh id, `<prefix>_<ULID>`, with the ULID's time part taken from `now` (the injected
/// clock), so ordering follows the clock the rest of the server sees.
///
/// Within one process ids are strictly increasing even inside one millisecond (a monotonic
/// ULID generator), so objects created in a burst list in creation order. The generator is
/// process-wide state, but holds nothing secret or security-relevant.
pub fn new_id(prefix: &str, now: crate::Timestamp) -> String {
    use std::sync::{Mutex, OnceLock};
    static GEN: OnceLock<Mutex<ulid::Generator>> = OnceLock::new();
    let ms = u64::try_from(now.millis()).unwrap_or(0);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let ulid = GEN
        .get_or_init(|| Mutex::new(ulid::Generator::new()))
        .lock()
        .ok()
        .and_then(|mut g| g.generate_from_datetime(at).ok())
        .unwrap_or_else(|| ulid::Ulid::from_parts(ms, rand::random::<u128>()));
    format!("{prefix}_{ulid}")
}

/// Whether `id` looks like an id of that prefix. Used to answer 404 for obviously foreign
/// ids without a database round trip, and to validate pagination cursors.
/// The smallest id `new_id(prefix, at)` can return: every id made at `at` or later sorts at
/// or after it, every earlier one before it. Lets a time cut-off run as a range of the
/// primary key (no index on a time column to keep up on every insert).
pub fn first_id_at(prefix: &str, at: crate::Timestamp) -> String {
    let ms = u64::try_from(at.millis()).unwrap_or(0);
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms, 0))
}

pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_made_before_a_time_sort_below_its_first_id_and_later_ones_at_or_above() {
        let at = crate::Timestamp(1_795_953_600_000);
        let cut = first_id_at("event", at);
        for (dt, below) in [(-1, true), (-86_400_000, true), (0, false), (1, false)] {
            let id = new_id("event", crate::Timestamp(at.millis() + dt));
            assert_eq!(id < cut, below, "{id} vs {cut} at {dt} ms");
        }
    }

    use super::*;
    use crate::Timestamp;

    #[test]
    fn new_ids_carry_the_prefix_and_a_26_char_ulid() {
        let id = new_id(prefix::FACTOR, Timestamp(1_700_000_000_000));
        assert!(id.starts_with("auth_factor_"));
        assert_eq!(id.len(), "auth_factor_".len() + 26);
        assert!(has_prefix(&id, prefix::FACTOR));
        assert!(!has_prefix(&id, prefix::USER));
        assert!(!has_prefix("auth_factor_nope", prefix::FACTOR));
    }

    #[test]
    fn ids_made_in_the_same_millisecond_still_sort_in_creation_order() {
        let ids: Vec<String> = (0..100)
            .map(|_| new_id(prefix::EVENT, Timestamp(5_000)))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn ids_sort_by_the_clock_they_were_made_with() {
        let a = new_id(prefix::USER, Timestamp(1_000));
        let b = new_id(prefix::USER, Timestamp(2_000));
        assert!(a < b);
    }
}
