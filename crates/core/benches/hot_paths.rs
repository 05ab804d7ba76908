//! Micro-benchmarks of the core's hot pure functions: what every MFA request pays.
//!
//! Targets (from the performance issue): a TOTP window check well under 2 µs, a QR PNG under
//! 200 µs. Kept short (≈1 s warm-up, 2 s measurement, 30 samples per benchmark; the Argon2
//! group 10 samples in 3 s) so that `cargo bench -p tessera-core` runs in under a minute once
//! built.

// A benchmark is test code: a broken fixture should stop it loudly, as in a test.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_core::seal::{KeyRing, MasterKey};
use tessera_core::totp::{self, TotpSecret};
use tessera_core::{qr, token};

/// The server's default `--totp-window`.
const WINDOW: u32 = 1;
/// A fixed instant, so every run checks the same steps.
const NOW: i64 = 1_700_000_000;

fn totp_verify(c: &mut Criterion) {
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
    let good = totp::code_for_step(&secret, totp::step_at(NOW));
    // Some code that is none of the three in the window.
    let bad = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|code| totp::verify(&secret, code, NOW, WINDOW).is_none())
        .expect("some 6-digit code misses a 3-step window");
    let mut g = c.benchmark_group("totp_verify");
    g.bench_function("matching_code_window_1", |b| {
        b.iter(|| totp::verify(black_box(&secret), black_box(&good), black_box(NOW), WINDOW))
    });
    g.bench_function("wrong_code_window_1", |b| {
        b.iter(|| totp::verify(black_box(&secret), black_box(&bad), black_box(NOW), WINDOW))
    });
    g.finish();
}

fn seal(c: &mut Criterion) {
    let ring = KeyRing::new(MasterKey::generate().0, vec![]);
    let secret = [0x5au8; totp::SECRET_BYTES];
    let row = "auth_factor_01HZXYZ0000000000000000000";
    let sealed = ring.seal("totp", row, &secret).expect("seals");
    let mut g = c.benchmark_group("seal");
    g.bench_function("seal_20_bytes", |b| {
        b.iter(|| ring.seal("totp", black_box(row), black_box(&secret)))
    });
    g.bench_function("open_20_bytes", |b| {
        b.iter(|| {
            ring.open("totp", black_box(row), black_box(&sealed))
                .expect("opens")
        })
    });
    g.finish();
}

fn otp_mac(c: &mut Criterion) {
    let ring = KeyRing::new(MasterKey::generate().0, vec![]);
    let challenge = "auth_challenge_01HZXYZ0000000000000000000";
    let stored = ring.mac("otp", challenge, b"123456");
    let mut g = c.benchmark_group("otp_mac");
    g.bench_function("mac", |b| {
        b.iter(|| ring.mac("otp", black_box(challenge), black_box(b"123456")))
    });
    g.bench_function("mac_matches", |b| {
        b.iter(|| ring.mac_matches("otp", black_box(challenge), black_box(b"123456"), &stored))
    });
    g.finish();
}

fn api_token_hash(c: &mut Criterion) {
    let key = token::new_api_key();
    c.bench_function("token_hash", |b| {
        b.iter(|| token::hash(black_box(&key.secret)))
    });
}

fn qr_png(c: &mut Criterion) {
    let secret_b32 = TotpSecret::from_bytes(vec![0xa7; totp::SECRET_BYTES]).to_base32();
    // The URI shape from the issue (32 base32 characters = a 160-bit secret).
    let uri = format!(
        "otpauth://totp/Tessera:alice%40example.com?secret={secret_b32}&issuer=Tessera&algorithm=SHA1&digits=6&period=30"
    );
    let mut g = c.benchmark_group("qr");
    g.bench_function("png_otpauth_uri", |b| {
        b.iter(|| qr::png(black_box(&uri)).expect("fits"))
    });
    g.bench_function("png_data_uri_otpauth_uri", |b| {
        b.iter(|| qr::png_data_uri(black_box(&uri)).expect("fits"))
    });
    g.finish();
}

/// Not a hot path (tens of ms by design), but the pooled working memory should make it no
/// slower than `argon2`'s own verifier, which allocates 19 MiB per call. Fewer samples.
fn password(c: &mut Criterion) {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let stored = tessera_core::password::hash("correct horse battery staple").expect("hash");
    let mut g = c.benchmark_group("password");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("verify_pooled", |b| {
        b.iter(|| {
            tessera_core::password::verify(black_box("correct horse battery staple"), Some(&stored))
        })
    });
    g.bench_function("verify_argon2_fresh_alloc", |b| {
        b.iter(|| {
            let parsed = PasswordHash::new(&stored).expect("phc");
            argon2::Argon2::default()
                .verify_password(black_box(b"correct horse battery staple"), &parsed)
                .is_ok()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = totp_verify, seal, otp_mac, api_token_hash, qr_png, password
}
criterion_main!(benches);
