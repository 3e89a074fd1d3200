//! Host columns of loose types, read in one place: SQLite keeps what the
//! application wrote (text for a number, 'true' for a boolean), so rappel
//! reads host values through these rather than by a column's declared type.

/// A host column as text: `None` for NULL (and blobs), numbers written out.
/// Host tables are not typed strictly, so rows are read through this.
pub fn text(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

/// A host column holding a row id: an integer (or integer text); `None`
/// for NULL or anything else, so one odd value never stops a run.
pub fn id(v: rusqlite::types::ValueRef<'_>) -> Option<i64> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// A host's boolean column: 0/1 (any non-zero number is true), or text such
/// as "true", "yes", "off"; `None` for NULL, blobs and other text.
pub fn flag(v: rusqlite::types::ValueRef<'_>) -> Option<bool> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(f) => Some(f != 0.0),
        ValueRef::Text(t) => match t.trim_ascii().to_ascii_lowercase().as_slice() {
            b"1" | b"true" | b"t" | b"yes" | b"y" | b"on" => Some(true),
            b"0" | b"false" | b"f" | b"no" | b"n" | b"off" | b"" => Some(false),
            _ => None,
        },
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}
