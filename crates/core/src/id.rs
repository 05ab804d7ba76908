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
/// clock), so ordering follows the clock the rest of the server sees, and a time cut-off can
/// be a range of ids ([`first_id_at`]).
///
/// Within one millisecond ids are strictly increasing (the previous ULID of that millisecond
/// plus one), so objects created in a burst list in creation order. A new millisecond starts
/// from fresh randomness: the time part is always exactly `now`, never
/// carried forward from a later clock reading (the `ulid` crate's monotonic generator does
/// carry it, which would put ids ahead of their clock after a clock step back, and in tests
/// where several manual clocks share one process). The last id is process-wide state, but
/// holds nothing secret or security-relevant.
pub fn new_id(prefix: &str, now: crate::Timestamp) -> String {
    use std::sync::Mutex;
    /// The last ULID of each of the most recent milliseconds seen (a few, round robin), so
    /// interleaved milliseconds (concurrent requests that read the clock in a different order
    /// than they make ids; tests with several clocks) each keep their own increasing sequence.
    static LAST: Mutex<([Option<ulid::Ulid>; 16], usize)> = Mutex::new(([None; 16], 0));
    let ms = u64::try_from(now.millis()).unwrap_or(0);
    let fresh = || ulid::Ulid::from_parts(ms, rand::random::<u128>());
    let ulid = match LAST.lock() {
        Ok(mut guard) => {
            let (slots, next_slot) = &mut *guard;
            let slot = match slots
                .iter()
                .position(|u| u.is_some_and(|u| u.timestamp_ms() == ms))
            {
                Some(i) => i,
                None => {
                    let i = *next_slot;
                    *next_slot = (i + 1) % slots.len();
                    slots[i] = None;
                    i
                }
            };
            let id = slots[slot]
                .and_then(|u| u.increment())
                .unwrap_or_else(fresh);
            slots[slot] = Some(id);
            id
        }
        Err(_) => fresh(),
    };
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
    fn an_id_carries_its_own_clock_time_even_after_an_id_from_a_later_clock() {
        let t = crate::Timestamp(1_795_953_600_000);
        let later = new_id("event", crate::Timestamp(t.millis() + 90 * 86_400_000));
        let now = new_id("event", t);
        assert!(now < later);
        assert!(
            now < first_id_at("event", crate::Timestamp(t.millis() + 1)),
            "{now}"
        );
        let same_ms: Vec<String> = (0..50).map(|_| new_id("event", t)).collect();
        assert!(
            same_ms.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
    }

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
