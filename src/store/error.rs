//! The store's error: what went wrong at the database boundary, so callers
//! name no driver. `exit::of_error` maps it to exit 74 (DESIGN §5).

/// A failed statement, transaction or row conversion in the store. Its
/// `Display` is the driver's message; `source()` is the driver's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(#[source] rusqlite::Error);

/// What a store operation gives: its value, or the `StoreError` that stopped it.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e)
    }
}

impl StoreError {
    /// Whether the database stayed locked by another writer past the busy
    /// timeout (`SQLITE_BUSY`, `SQLITE_LOCKED`; in PostgreSQL a lock
    /// timeout). Such a statement may be tried again.
    pub fn is_busy(&self) -> bool {
        crate::db::is_busy(&self.0)
    }
}

/// Whether an error from anywhere in a chain is the database's: a
/// `StoreError`, or the driver's own from opening and migrating (`db`).
pub fn is_store_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<StoreError>() || e.is::<rusqlite::Error>()
}
