//! Connection-pool figures for the server's `/metrics`: read from the pools' own counters,
//! never by waiting for a connection, so a scrape of a saturated server still answers.

use crate::db::Db;
use crate::Store;

/// A snapshot of the connection pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolStats {
    /// sqlx's PostgreSQL pool.
    Postgres {
        /// Connections open, busy or idle.
        open: u32,
        /// Open connections waiting in the pool.
        idle: u32,
        /// The pool's ceiling (`--max-connections`).
        max: u32,
    },
    /// SQLite's read-only connections and its single writer.
    Sqlite {
        /// Reader connections handed out. Not bounded: more are opened under load.
        readers_in_use: u32,
        /// Reader connections kept for the next read.
        readers_idle: u32,
        /// Write bodies waiting for the writer (its queue depth).
        writer_queue: u32,
    },
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Store {
    /// The pools' current figures (cheap: counters and lengths, no query).
    pub fn pool_stats(&self) -> PoolStats {
        match &*self.db {
            Db::Postgres(pool) => PoolStats::Postgres {
                open: pool.size(),
                idle: count(pool.num_idle()),
                max: pool.options().get_max_connections(),
            },
            Db::Sqlite(lite) => {
                let (in_use, idle, queued) = lite.pool_figures();
                PoolStats::Sqlite {
                    readers_in_use: count(in_use),
                    readers_idle: count(idle),
                    writer_queue: count(queued),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatabaseUrl, StoreOptions};

    #[tokio::test]
    async fn sqlite_readers_count_as_in_use_until_they_go_back_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(dir.path().join("t.db").to_str().unwrap()).unwrap();
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        let Db::Sqlite(lite) = &*store.db else {
            unreachable!("a SQLite URL")
        };
        let idle_at_rest = match store.pool_stats() {
            PoolStats::Sqlite {
                readers_in_use: 0,
                readers_idle,
                writer_queue: 0,
            } => readers_idle,
            other => panic!("{other:?}"),
        };
        let a = lite.reader().unwrap();
        let b = lite.reader().unwrap();
        match store.pool_stats() {
            PoolStats::Sqlite { readers_in_use, .. } => assert_eq!(readers_in_use, 2),
            other => panic!("{other:?}"),
        }
        drop(a);
        drop(b);
        assert_eq!(
            store.pool_stats(),
            PoolStats::Sqlite {
                readers_in_use: 0,
                readers_idle: idle_at_rest.max(2),
                writer_queue: 0,
            }
        );
        store.close().await;
    }
}
