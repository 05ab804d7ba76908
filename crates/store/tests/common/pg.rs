//! PostgreSQL test databases, shared by the store suite and the HTTP suite (which includes
//! this file with `#[path]`): one migrated template per schema, cloned per test.
//!
//! Migrating a database costs seconds of a PostgreSQL test; `CREATE DATABASE ... TEMPLATE`
//! copies a migrated one in milliseconds. The template's name carries a hash of the
//! migrations, so a changed schema gets a new template. Many test processes (nextest runs
//! one per test) may want it at once: it is built under a PostgreSQL advisory lock, as
//! `<name>_build`, and renamed into place only when complete, so nobody clones a half-built
//! template and a crashed build is simply redone.
//!
//! The URL comes from `TESSERA_TEST_DATABASE_URL`. Set but unreachable is a failure, never a
//! skip; unset is a failure too when `CI` is set, so CI cannot silently lose PostgreSQL.

#![allow(dead_code)]

use std::hash::{Hash, Hasher};

use sqlx::Connection;
use tessera_store::{DatabaseUrl, Store, StoreOptions};

/// The admin URL of the test server, or `None` when PostgreSQL tests are not configured.
/// Panics when `CI` is set (to anything but `false`/`0`) and the URL is not.
pub(crate) fn admin_url() -> Option<String> {
    let url = std::env::var("TESSERA_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        url.is_some() || !ci,
        "CI is set but TESSERA_TEST_DATABASE_URL is not: the PostgreSQL tests must run in CI"
    );
    url
}

/// A hash of the PostgreSQL migrations (names and contents), which names the template.
fn schema_hash() -> u64 {
    let dir = ["migrations/postgres", "../store/migrations/postgres"]
        .iter()
        .map(|d| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(d))
        .find(|p| p.is_dir())
        .expect("the store's migrations/postgres folder");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        f.file_name().hash(&mut h);
        std::fs::read(&f).unwrap().hash(&mut h);
    }
    h.finish()
}

async fn admin(admin_url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("TESSERA_TEST_DATABASE_URL is set but PostgreSQL is not reachable: {e}")
        })
}

fn url_of(admin_url: &str, name: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("a URL ending in /database");
    format!("{base}/{name}")
}

async fn run(c: &mut sqlx::PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes sure the migrated template for the current schema exists; returns its name.
async fn ensure_template(c: &mut sqlx::PgConnection, admin_url: &str) -> String {
    /// Any constant shared by all test processes ("testtmpl" in ASCII).
    const LOCK: i64 = 0x7465_7374_746d_706c;
    let name = format!("tessera_tpl_{:016x}", schema_hash());
    if exists(c, &name).await {
        return name;
    }
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *c)
        .await
        .unwrap();
    if !exists(c, &name).await {
        let build = format!("{name}_build");
        run(c, &format!("DROP DATABASE IF EXISTS {build} WITH (FORCE)")).await;
        run(c, &format!("CREATE DATABASE {build}")).await;
        let url = DatabaseUrl::parse(&url_of(admin_url, &build)).unwrap();
        let store = Store::connect(
            &url,
            &StoreOptions {
                max_connections: 1,
                ..Default::default()
            },
        )
        .await
        .expect("the template migrates");
        store.close().await;
        // A closed pool's backends may linger a moment; the rename needs them gone.
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&build)
            .execute(&mut *c)
            .await
            .unwrap();
        run(c, &format!("ALTER DATABASE {build} RENAME TO {name}")).await;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *c)
        .await
        .unwrap();
    name
}

async fn exists(c: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *c)
        .await
        .unwrap()
        .is_some()
}

/// A new, migrated, uniquely named database; returns (its URL, its name).
pub(crate) async fn create_database(admin_url: &str) -> (DatabaseUrl, String) {
    let mut c = admin(admin_url).await;
    let template = ensure_template(&mut c, admin_url).await;
    let name = format!(
        "tessera_t_{}",
        tessera_core::token::random_base62(12).to_lowercase()
    );
    run(
        &mut c,
        &format!("CREATE DATABASE {name} TEMPLATE {template}"),
    )
    .await;
    let _ = c.close().await;
    (DatabaseUrl::parse(&url_of(admin_url, &name)).unwrap(), name)
}

/// A new, uniquely named database with no tables at all (not from the migrated template),
/// for tests of what Tessera does with a database it never set up; returns (URL, name).
pub(crate) async fn create_empty_database(admin_url: &str) -> (DatabaseUrl, String) {
    let mut c = admin(admin_url).await;
    let name = format!(
        "tessera_t_{}",
        tessera_core::token::random_base62(12).to_lowercase()
    );
    run(&mut c, &format!("CREATE DATABASE {name}")).await;
    let _ = c.close().await;
    (DatabaseUrl::parse(&url_of(admin_url, &name)).unwrap(), name)
}

/// Drops a database made by [`create_database`], from a thread of its own (the test's
/// runtime may be shutting down when this runs from a `Drop`).
pub(crate) fn drop_database(admin_url: String, name: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        });
    })
    .join();
}
