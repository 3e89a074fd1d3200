//! The SQL form of `domain`'s closed sets: each is stored as its stable text
//! form (DESIGN §4), and a stored text that is not one of them is a
//! conversion error naming it.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::domain::{Channel, DeliveryStatus, ErrorClass, Job, Kind};

macro_rules! sql_text {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?.parse().map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    )*};
}

sql_text!(Channel, DeliveryStatus, ErrorClass, Job, Kind);
