//! The store suite's backends: SQLite always, PostgreSQL when `TESSERA_TEST_DATABASE_URL`
//! is set (and required when `CI` is set; see [`pg::admin_url`]).

#![allow(dead_code)]

pub(crate) mod pg;

use tessera_store::{DatabaseUrl, Store, StoreOptions};

/// A store on a fresh database; the database goes when this is dropped.
pub(crate) struct TestStore {
    pub name: &'static str,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            pg::drop_database(admin, name);
        }
    }
}

impl TestStore {
    pub(crate) async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(dir.path().join("t.db").to_str().unwrap()).unwrap();
        TestStore {
            name: "sqlite",
            store: Store::connect(&url, &StoreOptions::default())
                .await
                .unwrap(),
            _dir: Some(dir),
            pg: None,
        }
    }

    pub(crate) async fn postgres(admin: &str) -> TestStore {
        let (url, name) = pg::create_database(admin).await;
        TestStore {
            name: "postgres",
            store: Store::connect(&url, &StoreOptions::default())
                .await
                .unwrap(),
            _dir: None,
            pg: Some((admin.to_owned(), name)),
        }
    }

    /// Closes the pools, so a PostgreSQL database can be dropped without a fight.
    pub(crate) async fn close(self) {
        self.store.close().await;
    }
}

/// One fresh store per configured backend, SQLite first.
pub(crate) async fn backends() -> Vec<TestStore> {
    let mut v = vec![TestStore::sqlite().await];
    if let Some(admin) = pg::admin_url() {
        v.push(TestStore::postgres(&admin).await);
    } else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL not tested");
    }
    v
}
