//! The row and argument layer both backends share: statement parameters ([`Arg`], built with
//! [`args!`]), column decoding by position ([`Col`], [`Cols`], [`FromRow`], [`from_row!`]),
//! and the error of a failed statement ([`DbError`]).

use rusqlite::types::{ToSql, ToSqlOutput, Value, ValueRef};
use sqlx::postgres::PgRow;
use sqlx::Postgres;
use tessera_core::{Error, FactorKind, Timestamp};

/// A failed statement. Converts into [`Error::Internal`], or [`Error::Unavailable`] when the
/// database could not be reached; callers that expect a constraint
/// violation match on `unique` first.
#[derive(Debug)]
pub(crate) struct DbError {
    /// The unique constraint (or primary key) the statement violated, if that is what failed.
    pub unique: Option<Unique>,
    /// The database is out of reach (see [`crate::outage::is_unavailable`]).
    pub unavailable: bool,
    pub message: String,
}

/// The unique constraints a caller turns into a client error, named the same on both
/// backends: PostgreSQL reports the constraint's name, SQLite (whose UNIQUE constraints have
/// no names it reports) the `table.column` it covers; [`UNIQUE_CONSTRAINTS`] maps both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    UserEmail,
    UserExternalId,
    AdminEmail,
    /// Any other unique constraint or primary key (a caller's bug, or a lost race that the
    /// caller does not expect): an internal error.
    Other,
}

/// Each [`Unique`] with its PostgreSQL constraint name (PostgreSQL's default for an inline
/// `UNIQUE`, `<table>_<column>_key`, which the migrations rely on; the store suite checks
/// every pair on both backends) and the columns SQLite names.
pub(crate) const UNIQUE_CONSTRAINTS: [(Unique, &str, &str); 3] = [
    (Unique::UserEmail, "users_email_key", "users.email"),
    (
        Unique::UserExternalId,
        "users_external_id_key",
        "users.external_id",
    ),
    (Unique::AdminEmail, "admins_email_key", "admins.email"),
];

impl Unique {
    fn of_postgres(constraint: &str) -> Unique {
        UNIQUE_CONSTRAINTS
            .iter()
            .find(|(_, pg, _)| *pg == constraint)
            .map_or(Unique::Other, |(u, _, _)| *u)
    }

    /// From SQLite's message, `UNIQUE constraint failed: <table>.<column>[, ...]`.
    fn of_sqlite(message: &str) -> Unique {
        let columns = message
            .strip_prefix("UNIQUE constraint failed: ")
            .unwrap_or_default();
        UNIQUE_CONSTRAINTS
            .iter()
            .find(|(_, _, lite)| *lite == columns)
            .map_or(Unique::Other, |(u, _, _)| *u)
    }
}

impl DbError {
    /// A failure that is no constraint violation.
    pub(crate) fn other(message: impl Into<String>) -> Self {
        DbError {
            unique: None,
            unavailable: false,
            message: message.into(),
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        if e.unavailable {
            Error::Unavailable(format!("database: {}", e.message))
        } else {
            Error::Internal(format!("database: {}", e.message))
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        let unique = match &e {
            // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY
            rusqlite::Error::SqliteFailure(f, message)
                if matches!(f.extended_code, 2067 | 1555) =>
            {
                Some(Unique::of_sqlite(message.as_deref().unwrap_or_default()))
            }
            _ => None,
        };
        DbError {
            unique,
            unavailable: false,
            message: e.to_string(),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        let (unique, message) = match &e {
            sqlx::Error::Database(db) => (
                db.is_unique_violation()
                    .then(|| Unique::of_postgres(db.constraint().unwrap_or_default())),
                format!("{} {}", db.message(), db.constraint().unwrap_or_default()),
            ),
            _ => (None, e.to_string()),
        };
        DbError {
            unique,
            unavailable: crate::outage::is_unavailable(&e),
            message,
        }
    }
}

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}
impl From<Timestamp> for Arg<'_> {
    fn from(v: Timestamp) -> Self {
        Arg::Int(Some(v.millis()))
    }
}
impl From<Option<Timestamp>> for Arg<'_> {
    fn from(v: Option<Timestamp>) -> Self {
        Arg::Int(v.map(Timestamp::millis))
    }
}
impl From<FactorKind> for Arg<'_> {
    fn from(v: FactorKind) -> Self {
        Arg::Text(Some(v.as_str()))
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(Some(v))
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Blob(Some(v))
    }
}
impl<'a> From<&'a Option<Vec<u8>>> for Arg<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        Arg::Blob(v.as_deref())
    }
}

/// `args![a, b, c]`: a parameter list, `$1` first.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::sql::Arg::from($a)),*]
    };
}
pub(crate) use args;

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(v)),
            Arg::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(b))),
            Arg::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Arg::Int(None) | Arg::Text(None) | Arg::Blob(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// A column type both backends decode.
pub(crate) trait Col:
    rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}
impl<T> Col for T where
    T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

/// A field decoded from one column: a [`Col`] as it is, or a domain type from the column
/// type it is stored as (a [`FactorKind`] from TEXT). A stored value the type does not know
/// is an error of the statement, never a panic.
pub(crate) trait Column: Sized {
    type Stored: Col;
    fn from_stored(v: Self::Stored) -> Result<Self, DbError>;
}

macro_rules! stored_as_is {
    ($($t:ty),*) => {
        $(impl Column for $t {
            type Stored = $t;
            fn from_stored(v: $t) -> Result<Self, DbError> {
                Ok(v)
            }
        })*
    };
}
stored_as_is!(
    i64,
    Option<i64>,
    bool,
    String,
    Option<String>,
    Vec<u8>,
    Option<Vec<u8>>
);

/// Times are stored as BIGINT milliseconds since the epoch (comparisons stay in SQL, with no
/// date types that differ between the backends).
impl Column for Timestamp {
    type Stored = i64;
    fn from_stored(v: i64) -> Result<Self, DbError> {
        Ok(Timestamp::from_millis(v))
    }
}

impl Column for Option<Timestamp> {
    type Stored = Option<i64>;
    fn from_stored(v: Option<i64>) -> Result<Self, DbError> {
        Ok(v.map(Timestamp::from_millis))
    }
}

impl Column for FactorKind {
    type Stored = String;
    fn from_stored(v: String) -> Result<Self, DbError> {
        FactorKind::parse(&v).ok_or_else(|| DbError::other(format!("unknown factor type {v:?}")))
    }
}

/// A result row of either backend, read by column position.
pub(crate) trait Cols {
    fn col<T: Column>(&self, i: usize) -> Result<T, DbError>;
}

impl Cols for rusqlite::Row<'_> {
    fn col<T: Column>(&self, i: usize) -> Result<T, DbError> {
        T::from_stored(self.get(i)?)
    }
}

impl Cols for PgRow {
    fn col<T: Column>(&self, i: usize) -> Result<T, DbError> {
        T::from_stored(sqlx::Row::try_get(self, i)?)
    }
}

/// A value made of `WIDTH` consecutive columns starting at `at` (so joins decode as tuples).
pub(crate) trait FromRow: Sized {
    const WIDTH: usize;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError>;
}

macro_rules! scalar_from_row {
    ($($t:ty),*) => {
        $(impl FromRow for $t {
            const WIDTH: usize = 1;
            fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
                r.col(at)
            }
        })*
    };
}
scalar_from_row!(
    i64,
    String,
    Option<i64>,
    Option<String>,
    FactorKind,
    Timestamp,
    Option<Timestamp>
);

impl<A: FromRow, B: FromRow> FromRow for (A, B) {
    const WIDTH: usize = A::WIDTH + B::WIDTH;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
        Ok((A::from_cols(r, at)?, B::from_cols(r, at + A::WIDTH)?))
    }
}

impl<A: FromRow, B: FromRow, C: FromRow> FromRow for (A, B, C) {
    const WIDTH: usize = A::WIDTH + B::WIDTH + C::WIDTH;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
        Ok((
            A::from_cols(r, at)?,
            B::from_cols(r, at + A::WIDTH)?,
            C::from_cols(r, at + A::WIDTH + B::WIDTH)?,
        ))
    }
}

/// `from_row!(Type { a, b, c })`: decodes the fields from consecutive columns, in the order
/// given (which must be the order of the type's column list).
macro_rules! from_row {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl $crate::sql::FromRow for $t {
            const WIDTH: usize = [$(stringify!($f)),*].len();
            #[allow(unused_assignments)]
            fn from_cols(
                r: &impl $crate::sql::Cols,
                at: usize,
            ) -> Result<Self, $crate::sql::DbError> {
                let mut i = at;
                Ok(Self {
                    $($f: {
                        let v = r.col(i)?;
                        i += 1;
                        v
                    }),*
                })
            }
        }
    };
}
pub(crate) use from_row;
