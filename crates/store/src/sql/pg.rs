//! The PostgreSQL adapter: [`Pg`], one connection through `sqlx` (checked out of the pool for
//! one store call by [`crate::outage::Checkout`], or a transaction's), as a [`Conn`].
//! Statements are prepared and cached by `sqlx` per connection.

use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres};

use super::{Arg, Conn, DbError, FromRow};

/// One PostgreSQL connection: checked out for one store call, or a transaction's.
pub(crate) struct Pg<'c>(pub(crate) &'c mut PgConnection);

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
        Ok(q.execute(&mut *self.0).await?.rows_affected())
    }

    async fn all<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, DbError> {
        let q = bind(sqlx::query(sql), args);
        let rows = q.fetch_all(&mut *self.0).await?;
        rows.iter().map(|r| T::from_cols(r, 0)).collect()
    }

    async fn opt<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>, DbError> {
        let q = bind(sqlx::query(sql), args);
        let row = q.fetch_optional(&mut *self.0).await?;
        row.map(|r| T::from_cols(&r, 0)).transpose()
    }

    async fn one<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<T, DbError> {
        let q = bind(sqlx::query(sql), args);
        let row = q.fetch_one(&mut *self.0).await?;
        T::from_cols(&row, 0)
    }
}
