//! Host columns of loose types, read in one place: SQLite keeps what the
//! application wrote (text for a number, 'true' for a boolean), so rappel
//! reads host values through these rather than by a column's declared type.
//! Each takes a `Cell` (or SQLite's `ValueRef`, converted).

use super::value::Cell;

/// A host column as text: `None` for NULL (and blobs), numbers written out.
/// Host tables are not typed strictly, so rows are read through this.
pub fn text<'a>(v: impl Into<Cell<'a>>) -> Option<String> {
    match v.into() {
        Cell::Text(t) => Some(t.into_owned()),
        Cell::Int(i) => Some(i.to_string()),
        Cell::Real(f) => Some(f.to_string()),
        Cell::Null | Cell::Blob(_) => None,
    }
}

/// A host column holding a row id: an integer (or integer text); `None`
/// for NULL or anything else, so one odd value never stops a run.
pub fn id<'a>(v: impl Into<Cell<'a>>) -> Option<i64> {
    match v.into() {
        Cell::Int(i) => Some(i),
        Cell::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

/// A host's boolean column: 0/1 (any non-zero number is true), or text such
/// as "true", "yes", "off"; `None` for NULL, blobs and other text.
pub fn flag<'a>(v: impl Into<Cell<'a>>) -> Option<bool> {
    match v.into() {
        Cell::Int(i) => Some(i != 0),
        Cell::Real(f) => Some(f != 0.0),
        Cell::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
            "0" | "false" | "f" | "no" | "n" | "off" | "" => Some(false),
            _ => None,
        },
        Cell::Null | Cell::Blob(_) => None,
    }
}
