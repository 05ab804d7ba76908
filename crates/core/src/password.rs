//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) in PHC format.
//!
//! These functions are CPU-heavy by design (~tens of ms); the server calls them on the blocking
//! pool behind a semaphore, never on the async executor.
//!
//! # Memory
//!
//! Argon2 needs `m_cost` KiB of working memory per hash (19 MiB here). `argon2`'s
//! `PasswordHasher`/`PasswordVerifier` allocate it afresh for every call, and glibc keeps the
//! freed blocks of many concurrent hashes resident, so under password load the process grew
//! to ~450 MiB. Here every hash borrows its working memory from a [`BlockPool`] instead: at
//! most `max_buffers` buffers ever exist (a caller that finds all of them in use waits for
//! one), so the memory for Argon2 is bounded by `max_buffers × 19 MiB` and is allocated (and
//! page-faulted) once rather than per request.
//!
//! [`hash`] and [`verify`] use the process-wide [`BlockPool::global`], sized to the number of
//! cores — the same bound the server's hashing semaphore uses. [`hash_with`] and
//! [`verify_with`] take an explicit pool.
//!
//! The PHC strings are exactly those `argon2::PasswordHasher::hash_password` writes, and
//! verification reads algorithm, version, `m`/`t`/`p`, salt and output length from the stored
//! string, like `argon2::PasswordVerifier`, so hashes made before the pool, and imported
//! Argon2 hashes with other parameters, verify unchanged.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// NIST SP 800-63B §5.1.1.2: at least 8 characters; at least 64 must be allowed. The upper
/// bound keeps a single request from making us hash megabytes.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

/// Why a new password was refused.
pub fn strength_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Some(format!("Password must be at least {MIN_LEN} characters."))
    } else if password.len() > MAX_LEN {
        Some(format!("Password must be at most {MAX_LEN} bytes."))
    } else {
        None
    }
}

/// Hashes `password` with Argon2id and a fresh random salt, using working memory from the
/// global [`BlockPool`]. Returns the PHC string to store.
pub fn hash(password: &str) -> Result<String, crate::Error> {
    hash_with(BlockPool::global(), password)
}

/// [`hash`] with working memory from `pool`.
pub fn hash_with(pool: &BlockPool, password: &str) -> Result<String, crate::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hash_with_salt(pool, password, &salt)
}

fn hash_with_salt(
    pool: &BlockPool,
    password: &str,
    salt: &SaltString,
) -> Result<String, crate::Error> {
    // Argon2::default() is Argon2id, version 0x13, Params::DEFAULT: what `hash` always used.
    let argon = Argon2::default();
    let params = argon.params();
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(crate::Error::internal)?;
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    pool.with_blocks(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut *out, blocks)
    })
    .map_err(crate::Error::internal)?;
    // The same fields, in the same order, as `<Argon2 as PasswordHasher>::hash_password`.
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(crate::Error::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&*out).map_err(crate::Error::internal)?),
    };
    Ok(phc.to_string())
}

/// The most an imported Argon2 hash may cost: 256 MiB of memory (`m`, in KiB), 10 passes
/// (`t`), 8 lanes (`p`). Every sign-in of the account pays this cost on a hashing permit, so
/// without a bound one imported hash (`t = 2^32 - 1`) could take the server's password work
/// hostage. The range covers every common recommendation (OWASP's 19–46 MiB, RFC 9106's
/// 64 MiB–2 GiB first choice excepted: 2 GiB per sign-in is not what a shared server can
/// pay), and a hash imported within it is replaced by one with [`hash`]'s parameters at the
/// account's next successful sign-in.
pub const MAX_IMPORT_MEMORY_KIB: u32 = 256 * 1024;
pub const MAX_IMPORT_PASSES: u32 = 10;
pub const MAX_IMPORT_LANES: u32 = 8;

/// Why an Argon2 PHC string cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportProblem {
    /// Not an Argon2 PHC string with a salt and an output.
    Malformed,
    /// Its `m`, `t` or `p` is outside the documented range (the message says which).
    CostOutOfRange(String),
}

/// Checks a PHC string offered for import (`None`: it can be stored as it is).
pub fn import_problem(phc: &str) -> Option<ImportProblem> {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Some(ImportProblem::Malformed);
    };
    let Ok(params) = argon2_params(&parsed) else {
        return Some(ImportProblem::Malformed);
    };
    cost_problem(&params).map(ImportProblem::CostOutOfRange)
}

/// Algorithm, version and parameters of an Argon2 PHC string with salt and output.
fn argon2_params(
    parsed: &PasswordHash<'_>,
) -> Result<(Algorithm, Version, Params), argon2::password_hash::Error> {
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(argon2::password_hash::Error::PhcStringField);
    }
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    Ok((algorithm, version, Params::try_from(parsed)?))
}

fn cost_problem((_, _, params): &(Algorithm, Version, Params)) -> Option<String> {
    if params.m_cost() > MAX_IMPORT_MEMORY_KIB {
        Some(format!(
            "password_hash memory (m) must be at most {MAX_IMPORT_MEMORY_KIB} KiB."
        ))
    } else if params.t_cost() > MAX_IMPORT_PASSES {
        Some(format!(
            "password_hash passes (t) must be at most {MAX_IMPORT_PASSES}."
        ))
    } else if params.p_cost() > MAX_IMPORT_LANES {
        Some(format!(
            "password_hash lanes (p) must be at most {MAX_IMPORT_LANES}."
        ))
    } else {
        None
    }
}

/// True when a stored hash was made with other parameters than [`hash`] uses now (an
/// imported hash, or one from before a change of parameters): it should be replaced at the
/// next successful sign-in.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok((algorithm, version, params)) = argon2_params(&parsed) else {
        return false;
    };
    let current = Params::DEFAULT;
    !(algorithm == Algorithm::Argon2id
        && version == Version::V0x13
        && params.m_cost() == current.m_cost()
        && params.t_cost() == current.t_cost()
        && params.p_cost() == current.p_cost()
        && parsed.hash.map(|h| h.len()) == Some(Params::DEFAULT_OUTPUT_LEN)
        && params.keyid().is_empty()
        && params.data().is_empty())
}

/// [`verify_with`], and when the password is right but the stored hash has other
/// parameters than [`hash`] uses now, a new hash of it to store in its place.
pub fn verify_and_rehash_with(
    pool: &BlockPool,
    password: &str,
    stored: Option<&str>,
) -> (bool, Option<String>) {
    let ok = verify_with(pool, password, stored);
    let rehash = match stored {
        Some(s) if ok && needs_rehash(s) => hash_with(pool, password).ok(),
        _ => None,
    };
    (ok, rehash)
}

/// Verifies `password` against a stored PHC string. `None` (a user without a password, or an
/// unknown user) is checked against a fixed dummy hash so that the time taken does not reveal
/// whether the account exists; the answer is then always `false`. Working memory comes from
/// the global [`BlockPool`].
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    verify_with(BlockPool::global(), password, stored)
}

/// [`verify`] with working memory from `pool`.
pub fn verify_with(pool: &BlockPool, password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    // Initialised before any buffer is taken: hashing it needs one of its own.
    let dummy = DUMMY.get_or_init(|| hash_with(pool, "tessera dummy password").unwrap_or_default());
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // A stored hash above the import bounds (imported before they existed) is never
    // computed: it would hold a hashing permit for as long as its parameters say. The dummy
    // hash is checked instead, so the answer takes the usual time and is `false`.
    if argon2_params(&parsed).is_ok_and(|p| cost_problem(&p).is_some()) {
        if let Ok(d) = PasswordHash::new(dummy) {
            let _ = matches(pool, password.as_bytes(), &d);
        }
        return false;
    }
    let ok = matches(pool, password.as_bytes(), &parsed).unwrap_or(false);
    ok && real
}

/// What `argon2::PasswordVerifier::verify_password` does — every parameter from the stored
/// hash, defaults where it omits one — but with pooled memory. The outputs are compared in
/// constant time.
fn matches(
    pool: &BlockPool,
    password: &[u8],
    stored: &PasswordHash<'_>,
) -> Result<bool, argon2::password_hash::Error> {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(stored.algorithm)?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    // m, t, p, keyid, data, and the output length of the stored hash.
    let params = Params::try_from(stored)?;
    let blocks_needed = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    pool.with_blocks(blocks_needed, |blocks| {
        argon.hash_password_into_with_memory(password, salt, &mut out, blocks)
    })?;
    Ok(bool::from(expected.as_bytes().ct_eq(&out)))
}

/// Reusable Argon2 working memories ("block arrays"), at most `max_buffers` of them.
///
/// A hash takes an idle buffer, or allocates one if fewer than `max_buffers` exist, or else
/// waits until another hash returns one; so at most `max_buffers` hashes run at once and at
/// most `max_buffers` standard-size buffers ever exist. Size the pool to the number of
/// concurrent hashes the caller allows (the server: its hashing semaphore, one per core) and
/// nobody ever waits here.
///
/// Buffers are sized for the default parameters (19 MiB). A stored hash with a smaller
/// `m_cost` uses a prefix of one; a larger one gets a buffer of its own size in place of the
/// standard one, dropped (not pooled) after that hash, so odd imported parameters never
/// leave large buffers behind.
///
/// The memory is not wiped between hashes (wiping 19 MiB costs ~1.4 ms, ~7 % of a hash), just
/// as the freed allocations of the old code never were. With Tessera's t = 2 the buffer holds
/// the state of the last pass, from which checking a password guess still costs a whole
/// first pass.
pub struct BlockPool {
    max_buffers: usize,
    /// Blocks per pooled buffer: `Params::DEFAULT.block_count()`.
    blocks: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Vec<Block>>,
    /// Buffers in existence: idle, in use, or being allocated.
    allocated: usize,
    /// The largest `allocated` ever was.
    peak: usize,
}

impl std::fmt::Debug for BlockPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("BlockPool")
            .field("max_buffers", &self.max_buffers)
            .field("blocks", &self.blocks)
            .field("allocated", &s.allocated)
            .field("idle", &s.idle.len())
            .finish()
    }
}

impl BlockPool {
    /// A pool of at most `max_buffers` (at least 1) buffers. Nothing is allocated until a
    /// hash needs it.
    pub fn new(max_buffers: usize) -> Self {
        BlockPool {
            max_buffers: max_buffers.max(1),
            blocks: Params::DEFAULT.block_count(),
            state: Mutex::new(PoolState::default()),
            returned: Condvar::new(),
        }
    }

    /// The pool [`hash`] and [`verify`] use: one buffer per core
    /// (`std::thread::available_parallelism`, 2 if unknown), the bound the server puts on
    /// concurrent password work.
    pub fn global() -> &'static BlockPool {
        static GLOBAL: OnceLock<BlockPool> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            BlockPool::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            )
        })
    }

    /// The most buffers this pool will ever hold.
    pub fn max_buffers(&self) -> usize {
        self.max_buffers
    }

    /// Buffers that exist now (idle or in use).
    pub fn allocated(&self) -> usize {
        self.lock().allocated
    }

    /// Buffers that exist now and are not in use.
    pub fn idle(&self) -> usize {
        self.lock().idle.len()
    }

    /// The most buffers that ever existed at once (never more than [`Self::max_buffers`]).
    pub fn peak_allocated(&self) -> usize {
        self.lock().peak
    }

    /// Borrows one buffer until the returned lease is dropped, waiting while all are in use.
    /// Every hash needs one, so holding all of them pauses password work: a test uses this
    /// to stop a hash at a known point.
    pub fn lease(&self) -> Lease<'_> {
        self.take()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The lock is never held across anything that can panic; recover rather than fail.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with at least `blocks` blocks of working memory, then returns the buffer.
    fn with_blocks<R>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let mut lease = self.take();
        if lease.buf.len() < blocks {
            // A stored hash with a larger m_cost: swap the standard buffer for one of the
            // right size (freeing the old one first), still counted as one of ours.
            lease.buf = Vec::new();
            lease.buf = vec![Block::default(); blocks];
        }
        f(&mut lease.buf[..blocks])
    }

    fn take(&self) -> Lease<'_> {
        let mut s = self.lock();
        loop {
            if let Some(buf) = s.idle.pop() {
                return Lease { pool: self, buf };
            }
            if s.allocated < self.max_buffers {
                s.allocated += 1;
                s.peak = s.peak.max(s.allocated);
                drop(s);
                // Allocated outside the lock; the slot is already reserved. If this
                // panicked, the lease's drop would give the slot back.
                let mut lease = Lease {
                    pool: self,
                    buf: Vec::new(),
                };
                lease.buf = vec![Block::default(); self.blocks];
                return lease;
            }
            s = self
                .returned
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, buf: Vec<Block>) {
        let mut s = self.lock();
        if buf.len() == self.blocks {
            s.idle.push(buf);
        } else {
            // Odd-sized (or never allocated): forget it; a standard one is made when needed.
            s.allocated -= 1;
            drop(s);
            drop(buf);
        }
        self.returned.notify_one();
    }
}

/// A buffer on loan from a [`BlockPool`], returned on drop (also if the hash panics).
pub struct Lease<'a> {
    pool: &'a BlockPool,
    buf: Vec<Block>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;
    use std::sync::Arc;

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong horse battery", Some(&h)));
    }

    #[test]
    fn unknown_users_never_verify_even_with_the_dummy_password() {
        assert!(!verify("tessera dummy password", None));
        assert!(!verify("anything", None));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(strength_problem("1234567").is_some());
        assert!(strength_problem("12345678").is_none());
        assert!(strength_problem(&"x".repeat(2000)).is_some());
    }

    #[test]
    fn hash_and_verify_round_trip_through_a_pool_and_reuse_its_buffer() {
        let pool = BlockPool::new(1);
        let h = hash_with(&pool, "pooled password").unwrap();
        assert!(verify_with(&pool, "pooled password", Some(&h)));
        assert!(!verify_with(&pool, "pooled passwort", Some(&h)));
        assert!(!verify_with(&pool, "", Some(&h)));
        // One buffer, made once, back in the pool.
        assert_eq!(
            (pool.allocated(), pool.idle(), pool.peak_allocated()),
            (1, 1, 1)
        );
        // And the global-pool functions agree with the explicit pool.
        assert!(verify("pooled password", Some(&h)));
    }

    #[test]
    fn phc_strings_are_exactly_what_the_argon2_crate_writes() {
        let pool = BlockPool::new(1);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let ours = hash_with_salt(&pool, "same salt, same hash", &salt).unwrap();
        let theirs = Argon2::default()
            .hash_password(b"same salt, same hash", &salt)
            .unwrap()
            .to_string();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn hashes_from_the_old_code_path_still_verify() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let old = Argon2::default()
            .hash_password(b"hashed before the pool", &salt)
            .unwrap()
            .to_string();
        assert!(verify("hashed before the pool", Some(&old)));
        assert!(!verify("hashed after the pool", Some(&old)));
    }

    #[test]
    fn hashes_with_other_parameters_verify_and_leave_the_pool_standard() {
        let pool = BlockPool::new(1);
        let standard = Params::DEFAULT.block_count();
        let cases = [
            // Smaller memory, argon2i, the old version 0x10, a 16-byte output.
            (
                Algorithm::Argon2i,
                Version::V0x10,
                Params::new(4096, 1, 1, Some(16)),
            ),
            // Larger memory than the pooled buffers, two lanes.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(24 * 1024, 1, 2, None),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x13,
                Params::new(8, 3, 1, None),
            ),
        ];
        for (alg, ver, params) in cases {
            let argon = Argon2::new(alg, ver, params.unwrap());
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let h = argon.hash_password(b"imported", &salt).unwrap().to_string();
            assert!(verify_with(&pool, "imported", Some(&h)), "{h}");
            assert!(!verify_with(&pool, "imported!", Some(&h)), "{h}");
            assert!(pool.allocated() <= 1);
        }
        // The large buffer was not kept: the next hash gets a standard one again.
        hash_with(&pool, "back to normal").unwrap();
        assert_eq!((pool.allocated(), pool.idle()), (1, 1));
        assert_eq!(pool.lock().idle[0].len(), standard);
    }

    #[test]
    fn imports_are_bounded_in_memory_passes_and_lanes() {
        let phc = |params: &str| {
            format!("$argon2id$v=19${params}$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
        };
        for ok in ["m=19456,t=2,p=1", "m=262144,t=10,p=8", "m=64,t=1,p=1"] {
            assert_eq!(import_problem(&phc(ok)), None, "{ok}");
        }
        for costly in [
            "m=4294967295,t=2,p=1",
            "m=262145,t=2,p=1",
            "m=19456,t=11,p=1",
            "m=19456,t=4294967295,p=1",
            "m=65536,t=2,p=9",
        ] {
            assert!(
                matches!(
                    import_problem(&phc(costly)),
                    Some(ImportProblem::CostOutOfRange(_))
                ),
                "{costly}"
            );
        }
        for bad in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        ] {
            assert_eq!(import_problem(bad), Some(ImportProblem::Malformed), "{bad}");
        }
    }

    #[test]
    fn a_stored_hash_above_the_bounds_is_never_computed() {
        // t = 2^32 - 1 would take days; the check answers false at once.
        let costly = "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!verify("anything", Some(costly)));
    }

    #[test]
    fn only_hashes_with_other_parameters_need_a_rehash_and_get_one_when_right() {
        let pool = BlockPool::new(1);
        let current = hash_with(&pool, "current parameters").unwrap();
        assert!(!needs_rehash(&current));
        assert_eq!(
            verify_and_rehash_with(&pool, "current parameters", Some(&current)),
            (true, None)
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(b"old parameters", &salt)
        .unwrap()
        .to_string();
        assert!(needs_rehash(&old));
        assert_eq!(
            verify_and_rehash_with(&pool, "wrong password", Some(&old)),
            (false, None)
        );
        let (ok, new) = verify_and_rehash_with(&pool, "old parameters", Some(&old));
        assert!(ok);
        let new = new.unwrap();
        assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{new}");
        assert!(verify_with(&pool, "old parameters", Some(&new)));
        assert_eq!(
            verify_and_rehash_with(&pool, "x", None),
            (false, None),
            "unknown users are never rehashed"
        );
    }

    #[test]
    fn malformed_or_foreign_hashes_never_verify() {
        for stored in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ] {
            assert!(!verify("password", Some(stored)), "{stored}");
        }
    }

    #[test]
    fn the_pool_never_holds_more_buffers_than_its_cap_under_concurrent_use() {
        let pool = Arc::new(BlockPool::new(2));
        let stored = hash_with(&pool, "concurrent").unwrap();
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let pool = Arc::clone(&pool);
                let stored = stored.clone();
                std::thread::spawn(move || {
                    for _ in 0..2 {
                        let own = hash_with(&pool, &format!("thread {i}")).unwrap();
                        assert!(verify_with(&pool, &format!("thread {i}"), Some(&own)));
                        assert!(verify_with(&pool, "concurrent", Some(&stored)));
                        assert!(pool.allocated() <= 2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.peak_allocated(), 2);
        assert_eq!(pool.allocated(), 2);
        assert_eq!(pool.idle(), 2);
    }
}
