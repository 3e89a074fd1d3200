//! The store's error: what went wrong at the database boundary, so callers
//! name no driver. `exit::of_error` maps it to exit 74 (DESIGN §5).

/// A failed statement, transaction or row conversion in the store. Its
/// `Display` is the driver's message (or the column and why it does not
/// convert); `source()` is the driver's error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The server's message (its `source` is left out: postgres' own
    /// `Display` repeats it after "db error").
    #[error("{}", postgres_message(.0))]
    Postgres(postgres::Error),
    /// A column whose value is not of the type the store reads it as.
    #[error("column {column}: {why}")]
    Column { column: String, why: String },
    /// A query that had to give a row gave none.
    #[error("the query gave no row")]
    NoRow,
    /// A statement run on a PostgreSQL connection while a query on it was
    /// still being read.
    #[error("the database connection is in use by another query")]
    InUse,
    /// A reader of a query's rows stopped it (a limit reached).
    #[error("the query was stopped")]
    Stopped,
    /// An operation written for SQLite alone, asked of PostgreSQL: where.
    #[error("this operation ({0}) is not available on PostgreSQL yet")]
    Unsupported(&'static std::panic::Location<'static>),
}

/// What a store operation gives: its value, or the `StoreError` that stopped it.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NoRow,
            e => StoreError::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

/// The server's own message and detail, where postgres' `Display` says
/// only "db error".
fn postgres_message(e: &postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut text = match db.detail() {
        Some(detail) => format!("{}: {detail}", db.message()),
        None => db.message().to_string(),
    };
    if *db.code() == postgres::error::SqlState::INSUFFICIENT_PRIVILEGE {
        // Said for both kinds of table, since the server names the table
        // and not whose it is: rappel's own, or one a `[sources]` mapping
        // reads (which the session's checks name first, when they can).
        text.push_str(
            " (the role rappel connects as needs SELECT, INSERT, UPDATE and DELETE on the tables of its \
             schema, and USAGE on their sequences; on your application's tables, SELECT on those [sources] \
             maps and UPDATE on the columns under [sources.<table>.update])",
        );
    }
    text
}

impl StoreError {
    /// Whether the database stayed locked by another writer past the busy
    /// timeout (`SQLITE_BUSY`, `SQLITE_LOCKED`; in PostgreSQL a lock
    /// timeout, a serialization failure or a deadlock). Such a statement
    /// may be tried again.
    pub fn is_busy(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            StoreError::Sqlite(e) => crate::db::is_busy(e),
            StoreError::Postgres(e) => e.code().is_some_and(|c| {
                [
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(c)
            }),
            _ => false,
        }
    }

    /// Whether the connection to the server is gone: closed under us, or
    /// ended by the server (SQLSTATE class 08, connection exception, or
    /// 57P01 to 57P03, an administrator's or a crash's shutdown). Nothing
    /// more can be read or written on it. Always false on SQLite, whose
    /// file does not go away between two statements.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            StoreError::Postgres(e) => {
                e.is_closed()
                    || e.code().is_some_and(|c| {
                        let code = c.code();
                        code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&code)
                    })
            }
            _ => false,
        }
    }

    /// Whether PostgreSQL refused the role a right on a table or schema
    /// (42501): a configuration error (exit 78), not a failing database.
    pub fn is_refused(&self) -> bool {
        self.sql_state().as_deref() == Some("42501")
    }

    /// PostgreSQL's SQLSTATE for the error (`57014` cancelled by
    /// `statement_timeout`, `25006` a write in a read-only transaction);
    /// `None` for SQLite and for errors that are not the server's.
    pub fn sql_state(&self) -> Option<String> {
        match self {
            StoreError::Postgres(e) => e.code().map(|c| c.code().to_string()),
            _ => None,
        }
    }
}

/// Whether an error from anywhere in a chain is the database's: a
/// `StoreError`, or the driver's own from opening and migrating (`db`).
pub fn is_store_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<StoreError>() || e.is::<rusqlite::Error>() || e.is::<postgres::Error>()
}
