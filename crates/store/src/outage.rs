//! When PostgreSQL goes away: every database operation ends within a deadline, a failure to
//! reach the database is told apart from a bug ([`Error::Unavailable`], a 503, against
//! [`Error::Internal`], a 500), and no connection cut off half-way goes back to the pool.
//!
//! How the time is bounded, and why this way:
//!
//! * Getting a connection: the pool's `acquire_timeout` (the database timeout), which also
//!   bounds opening a new connection (TCP connect and PostgreSQL start-up). While the server
//!   refuses connections, sqlx keeps retrying until that deadline.
//! * An operation on a connection that went silent (the network black-holes it: no reset, no
//!   answer): only the client can notice. A server-side `statement_timeout` cannot reach a
//!   client whose network is gone, and sqlx 0.8 sets neither TCP keepalives nor
//!   `TCP_USER_TIMEOUT` on its sockets, so the kernel would wait for its retransmission
//!   timeout (about 15 minutes on Linux). So every operation ([`bounded`]) runs under a tokio
//!   timeout of the same length, around the checkout and the whole body.
//! * A connection whose operation was cancelled (by that timeout, or because the client went
//!   away) is in an unknown state: a statement may be half-sent or its answer unread. Handed
//!   back to the pool, sqlx would test it with a round trip that has no timeout of its own,
//!   holding a pool slot for as long as the network stays silent; enough of those and no
//!   request gets a connection even after the database is back. [`Checkout`] closes such a
//!   connection instead, so the pool opens a fresh one.
//!
//! SQLite needs none of this: its file is local, and a locked database is bounded by its
//! `busy_timeout`.

use std::future::Future;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Postgres;
use tessera_core::Error;

/// The database timeout when none is configured.
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one database operation, answering [`Error::Unavailable`] if it has not finished
/// within `limit`. Dropping the operation's future drops its [`Checkout`], which closes the
/// connection rather than returning it.
pub(crate) async fn bounded<T>(
    limit: Duration,
    op: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, op).await {
        Ok(r) => r,
        Err(_) => Err(Error::Unavailable(format!(
            "no answer from PostgreSQL within {} ms",
            limit.as_millis()
        ))),
    }
}

/// A pooled connection that goes back to the pool only when its operation ran to the end
/// ([`Checkout::finish`]); dropped before that, it is closed (see the module header).
pub(crate) struct Checkout {
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl Checkout {
    pub(crate) async fn acquire(pool: &PgPool) -> Result<Self, Error> {
        let conn = pool.acquire().await.map_err(db_error)?;
        Ok(Checkout {
            conn,
            finished: false,
        })
    }

    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The operation ended (successfully or with an error PostgreSQL sent): the connection is
    /// in a known state and may serve the next one. A broken one fails sqlx's check on return
    /// at once (a reset socket answers immediately) and is dropped there.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.finished {
            // sqlx closes it in the background, under its own short timeout, and the pool
            // may open a replacement.
            self.conn.close_on_drop();
        }
    }
}

/// A sqlx error as a domain error: [`Error::Unavailable`] when the database could not be
/// reached or stopped answering ([`is_unavailable`]), [`Error::Internal`] otherwise.
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    if is_unavailable(&e) {
        Error::Unavailable(format!("database: {e}"))
    } else {
        Error::Internal(format!("database: {e}"))
    }
}

/// Whether `e` says the database is out of reach for now, rather than that the statement or
/// the code is wrong: a retry later may succeed.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        // Refused, reset, broken pipe, timed out, unexpected end of stream.
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| unavailable_sqlstate(&c)),
        _ => false,
    }
}

/// PostgreSQL error codes (SQLSTATE, Appendix A of its manual) that mean "not now" rather
/// than "not this".
fn unavailable_sqlstate(code: &str) -> bool {
    // Class 08: connection exceptions.
    code.starts_with("08")
        || matches!(
            code,
            // admin_shutdown, crash_shutdown, cannot_connect_now (starting up or in recovery)
            "57P01" | "57P02" | "57P03"
            // query_canceled: a statement_timeout an operator set, or a cancel request
            | "57014"
            // too_many_connections
            | "53300"
            // read_only_sql_transaction: a failover left this node on a standby
            | "25006"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_databases_are_unavailable_and_bugs_stay_internal() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for e in [
            refused,
            reset,
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
        ] {
            assert!(matches!(db_error(e), Error::Unavailable(_)));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
            sqlx::Error::Protocol("unexpected message".into()),
        ] {
            assert!(matches!(db_error(e), Error::Internal(_)));
        }
    }

    #[test]
    fn sqlstates_of_shutdown_timeouts_and_lost_connections_are_unavailable() {
        for c in [
            "08006", "08001", "57P01", "57P03", "57014", "53300", "25006",
        ] {
            assert!(unavailable_sqlstate(c), "{c}");
        }
        // unique_violation, syntax_error, undefined_table, serialization_failure
        for c in ["23505", "42601", "42P01", "40001"] {
            assert!(!unavailable_sqlstate(c), "{c}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_past_its_deadline_is_unavailable() {
        let slow = bounded(Duration::from_secs(2), async {
            std::future::pending::<Result<(), Error>>().await
        });
        assert!(matches!(slow.await, Err(Error::Unavailable(_))));
        let quick = bounded(Duration::from_secs(2), async { Ok::<_, Error>(7) });
        assert_eq!(quick.await.unwrap(), 7);
    }
}
