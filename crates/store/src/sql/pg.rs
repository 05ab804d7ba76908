//! The PostgreSQL adapter: [`Pg`], a pool or one transaction's connection through `sqlx`,
//! as a [`Conn`]. Statements are prepared and cached by `sqlx` per connection.

use sqlx::postgres::{PgArguments, PgPool};
use sqlx::{PgConnection, Postgres};

use super::{Arg, Conn, DbError, FromRow};

/// A PostgreSQL pool (each statement on any connection, committing alone), or one
/// transaction's connection.
pub(crate) enum Pg<'c> {
    Pool(&'c PgPool),
    Tx(&'c mut PgConnection),
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind<'q>(mut q: PgQuery<'q>, args: &[Arg<'q>]) -> PgQuery<'q> {
    for a in args {
        q = match *a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
        };
    }
    q
}

impl Conn for Pg<'_> {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let q = bind(sqlx::query(sql), args);
        let done = match self {
            Pg::Pool(p) => q.execute(*p).await?,
            Pg::Tx(c) => q.execute(&mut **c).await?,
        };
        Ok(done.rows_affected())
    }

    async fn all<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, DbError> {
        let q = bind(sqlx::query(sql), args);
        let rows = match self {
            Pg::Pool(p) => q.fetch_all(*p).await?,
            Pg::Tx(c) => q.fetch_all(&mut **c).await?,
        };
        rows.iter().map(|r| T::from_cols(r, 0)).collect()
    }

    async fn opt<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>, DbError> {
        let q = bind(sqlx::query(sql), args);
        let row = match self {
            Pg::Pool(p) => q.fetch_optional(*p).await?,
            Pg::Tx(c) => q.fetch_optional(&mut **c).await?,
        };
        row.map(|r| T::from_cols(&r, 0)).transpose()
    }

    async fn one<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<T, DbError> {
        let q = bind(sqlx::query(sql), args);
        let row = match self {
            Pg::Pool(p) => q.fetch_one(*p).await?,
            Pg::Tx(c) => q.fetch_one(&mut **c).await?,
        };
        T::from_cols(&row, 0)
    }
}
