//! Values across the two backends: what a statement binds (`Param`, from
//! any `ToParam`) and what a column holds (`Cell`, read into any
//! `FromCell`), typed as loosely as SQLite types them, so one statement's
//! Rust side serves SQLite and PostgreSQL alike.
//!
//! PostgreSQL gets each parameter in its text form (the protocol's text
//! format), which the server parses into the type it inferred for the
//! placeholder: an integer binds to `integer`, `bigint` or `numeric`, an
//! instant's RFC 3339 text to `text` or `timestamptz`. Result columns come
//! in the binary format the client asks for; `Cell` decodes the types a
//! host table uses (integers, floats, `numeric`, `boolean`, text, `bytea`,
//! `date`, `timestamp`, `timestamptz`, `json`, `jsonb`, `uuid`).

use std::borrow::Cow;
use std::error::Error as StdError;

use chrono::{DateTime, NaiveDate, Utc};
use postgres::types::{Format, IsNull, Kind as PgKind, Type};

use crate::domain::{Channel, DeliveryStatus, ErrorClass, Job, Kind};

type BoxError = Box<dyn StdError + Sync + Send>;

/// One bound value.
#[derive(Clone, Debug, PartialEq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Bool(bool),
}

impl Param<'_> {
    /// The PostgreSQL type this value declares where the server cannot
    /// infer one (`Conn`): `bigint`, `double precision`, `boolean`, and
    /// `text` for text and NULL.
    pub fn pg_type(&self) -> Type {
        match self {
            Param::Int(_) => Type::INT8,
            Param::Real(_) => Type::FLOAT8,
            Param::Bool(_) => Type::BOOL,
            Param::Text(_) | Param::Null => Type::TEXT,
        }
    }
}

/// A Rust value a statement can bind.
pub trait ToParam {
    fn param(&self) -> Param<'_>;
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn param(&self) -> Param<'_> {
        (**self).param()
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::param)
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn param(&self) -> Param<'_> {
                // Saturates only past i64::MAX, a count no table reaches.
                Param::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}

int_param!(i64, i32, u32, u16, u8, usize, u64);

impl ToParam for f64 {
    fn param(&self) -> Param<'_> {
        Param::Real(*self)
    }
}

impl ToParam for bool {
    fn param(&self) -> Param<'_> {
        Param::Bool(*self)
    }
}

impl ToParam for str {
    fn param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}

impl ToParam for String {
    fn param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}

/// An instant binds as rappel stores instants: RFC 3339 text in UTC
/// (`instant::format`).
impl ToParam for DateTime<Utc> {
    fn param(&self) -> Param<'_> {
        Param::Text(Cow::Owned(crate::instant::format(*self)))
    }
}

impl ToParam for Param<'_> {
    fn param(&self) -> Param<'_> {
        match self {
            Param::Text(t) => Param::Text(Cow::Borrowed(t)),
            Param::Null => Param::Null,
            Param::Int(i) => Param::Int(*i),
            Param::Real(f) => Param::Real(*f),
            Param::Bool(b) => Param::Bool(*b),
        }
    }
}

/// `domain`'s closed sets bind as their stable text form (DESIGN §4).
macro_rules! text_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn param(&self) -> Param<'_> {
                Param::Text(Cow::Borrowed(self.as_str()))
            }
        }

        impl FromCell for $t {
            fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
                let text = String::from_cell(cell)?;
                text.parse().map_err(|e: String| e)
            }
        }
    )*};
}

text_param!(Channel, DeliveryStatus, ErrorClass, Job, Kind);

/// The parameters of one statement, in placeholder order: `?1` is the first.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::db::value::ToParam] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::db::value::ToParam),+] as &[&dyn $crate::db::value::ToParam] };
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Param::Null => ToSqlOutput::Owned(Value::Null),
            Param::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Param::Real(f) => ToSqlOutput::Owned(Value::Real(*f)),
            Param::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
            Param::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

impl postgres::types::ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let text: Cow<'_, str> = match self {
            Param::Null => return Ok(IsNull::Yes),
            Param::Text(t) => Cow::Borrowed(t),
            Param::Int(i) if *ty == Type::BOOL => Cow::Borrowed(if *i != 0 { "t" } else { "f" }),
            Param::Int(i) => Cow::Owned(i.to_string()),
            Param::Real(f) => Cow::Owned(f.to_string()),
            Param::Bool(b) if is_number(ty) => Cow::Borrowed(if *b { "1" } else { "0" }),
            Param::Bool(b) => Cow::Borrowed(if *b { "t" } else { "f" }),
        };
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    postgres::types::to_sql_checked!();
}

fn is_number(ty: &Type) -> bool {
    [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::NUMERIC,
        Type::FLOAT4,
        Type::FLOAT8,
    ]
    .contains(ty)
}

/// One column of one row, as SQLite types values: NULL, an integer, a
/// float, text or bytes. PostgreSQL's `boolean` reads as 0/1; `numeric`,
/// `date`, `timestamp`, `timestamptz`, `json`, `jsonb` and `uuid` read as
/// text (an instant as RFC 3339 in UTC, a `timestamp` as
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(&'a [u8]),
}

impl Cell<'_> {
    /// The SQL type the value has, named as SQLite names it (`Integer`,
    /// `Null`…): what an error about an unexpected value says.
    pub fn type_name(&self) -> &'static str {
        match self {
            Cell::Null => "Null",
            Cell::Int(_) => "Integer",
            Cell::Real(_) => "Real",
            Cell::Text(_) => "Text",
            Cell::Blob(_) => "Blob",
        }
    }
}

impl<'a> From<rusqlite::types::ValueRef<'a>> for Cell<'a> {
    fn from(v: rusqlite::types::ValueRef<'a>) -> Self {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t)),
            ValueRef::Blob(b) => Cell::Blob(b),
        }
    }
}

impl<'a> postgres::types::FromSql<'a> for Cell<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        pg_cell(ty, raw)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's epoch for dates and timestamps.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N], BoxError> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()).into())
}

fn pg_cell<'a>(ty: &Type, raw: &'a [u8]) -> Result<Cell<'a>, BoxError> {
    let cell = match *ty {
        Type::INT2 => Cell::Int(i16::from_be_bytes(be(raw)?).into()),
        Type::INT4 => Cell::Int(i32::from_be_bytes(be(raw)?).into()),
        Type::INT8 => Cell::Int(i64::from_be_bytes(be(raw)?)),
        // An unsigned 32-bit number on the wire.
        Type::OID => Cell::Int(u32::from_be_bytes(be(raw)?).into()),
        // The shortest decimal that reads back as the same `real` (0.1, not
        // the 0.10000000149011612 its exact binary value would print as).
        Type::FLOAT4 => {
            let value = f32::from_be_bytes(be(raw)?);
            Cell::Real(value.to_string().parse().unwrap_or_else(|_| value.into()))
        }
        Type::FLOAT8 => Cell::Real(f64::from_be_bytes(be(raw)?)),
        Type::BOOL => Cell::Int(i64::from(raw.first().is_some_and(|b| *b != 0))),
        Type::BYTEA => Cell::Blob(raw),
        Type::NUMERIC => Cell::Text(Cow::Owned(numeric_text(raw)?)),
        Type::DATE => {
            let days = i32::from_be_bytes(be(raw)?);
            let date = pg_epoch()
                .checked_add_signed(chrono::Duration::days(days.into()))
                .ok_or("date out of range")?;
            Cell::Text(Cow::Owned(date.format("%Y-%m-%d").to_string()))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(be(raw)?);
            let at = pg_epoch()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .checked_add_signed(chrono::Duration::microseconds(micros))
                .ok_or("timestamp out of range")?;
            let text = if *ty == Type::TIMESTAMPTZ {
                if at.and_utc().timestamp_subsec_micros() == 0 {
                    crate::instant::format(at.and_utc())
                } else {
                    at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                }
            } else if at.and_utc().timestamp_subsec_micros() == 0 {
                at.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            };
            Cell::Text(Cow::Owned(text))
        }
        // A JSON string is read as the string it holds (a `json` stage
        // `"Diagnostic"` is the stage Diagnostic, not the same with its
        // quotes); any other JSON value as its text.
        Type::JSON => json_text(raw),
        Type::JSONB => json_text(raw.get(1..).unwrap_or_default()),
        Type::UUID => {
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let parts = [&hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]];
            Cell::Text(Cow::Owned(parts.join("-")))
        }
        _ if is_text(ty) => Cell::Text(String::from_utf8_lossy(raw)),
        _ => return Err(format!("rappel cannot read a column of type {}", ty.name()).into()),
    };
    Ok(cell)
}

/// A `json` value (its text; `jsonb`'s after its version byte) as
/// `pg_cell` reads it: a string's content (but one holding U+0000, which
/// no text column takes: its JSON text), `null` as NULL (an
/// `alert_recipients.stages` of JSON null is every stage, as SQL NULL), or
/// the text of any other value.
fn json_text(raw: &[u8]) -> Cell<'_> {
    let text = String::from_utf8_lossy(raw);
    let value = text.trim();
    if value == "null" {
        return Cell::Null;
    }
    if value.starts_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(value)
        && !inner.contains('\0')
    {
        return Cell::Text(Cow::Owned(inner));
    }
    Cell::Text(text)
}

fn is_text(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::CHAR,
    ]
    .contains(ty)
        || matches!(ty.kind(), PgKind::Enum(_))
        || matches!(ty.kind(), PgKind::Domain(inner) if is_text(inner))
}

/// `numeric`'s binary form (PostgreSQL's `numeric_send`: digit count,
/// weight, sign, display scale, then base-10000 digits) as decimal text.
fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        let at = i * 2;
        Ok(u16::from_be_bytes(be(raw
            .get(at..at + 2)
            .ok_or("numeric too short")?)?))
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)? as i16, word(2)?, word(3)?);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<u16> = (0..usize::from(ndigits))
        .map(|i| word(4 + i))
        .collect::<Result<_, _>>()?;
    let digit = |pos: i32| -> u16 {
        usize::try_from(pos)
            .ok()
            .and_then(|p| digits.get(p))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    let weight = i32::from(weight);
    if weight < 0 {
        out.push('0');
    } else {
        for pos in 0..=weight {
            let d = digit(pos);
            if pos == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut pos = weight + 1;
        while frac.len() < usize::from(dscale) {
            frac.push_str(&format!("{:04}", digit(pos)));
            pos += 1;
        }
        frac.truncate(usize::from(dscale));
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

/// A Rust value a column converts into, as rusqlite converts SQLite's
/// values: an integer from an integer, a float from either number, text
/// from text, `Option` for NULL. Errors: the value is of another type, or
/// text that is none of a closed set (a `domain` enum).
pub trait FromCell: Sized {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String>;
}

fn kind(cell: &Cell<'_>) -> &'static str {
    match cell {
        Cell::Null => "NULL",
        Cell::Int(_) => "an integer",
        Cell::Real(_) => "a float",
        Cell::Text(_) => "text",
        Cell::Blob(_) => "bytes",
    }
}

impl FromCell for i64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Int(i) => Ok(i),
            other => Err(format!("expected an integer, got {}", kind(&other))),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromCell for $t {
            fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
                let i = i64::from_cell(cell)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range"))
            }
        }
    )*};
}

narrow_int!(i32, u32, u16, u8, usize, u64);

impl FromCell for f64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Real(f) => Ok(f),
            // An integer column's value as a float, as SQLite gives it.
            #[allow(clippy::cast_precision_loss)]
            Cell::Int(i) => Ok(i as f64),
            // PostgreSQL's `numeric` reads as its text.
            Cell::Text(t) => t.parse().map_err(|_| format!("expected a number, got {t:?}")),
            other => Err(format!("expected a number, got {}", kind(&other))),
        }
    }
}

impl FromCell for bool {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Int(i) => Ok(i != 0),
            other => Err(format!("expected a boolean, got {}", kind(&other))),
        }
    }
}

impl FromCell for String {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Text(t) => Ok(t.into_owned()),
            other => Err(format!("expected text, got {}", kind(&other))),
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_reads_as_its_decimal_text() {
        // 12345.678: digits 1, 2345, 6780; weight 1; scale 3.
        assert_eq!(
            numeric_text(&numeric(3, 1, 0, 3, &[1, 2345, 6780])).unwrap(),
            "12345.678"
        );
        assert_eq!(numeric_text(&numeric(1, 0, 0x4000, 0, &[42])).unwrap(), "-42");
        assert_eq!(numeric_text(&numeric(1, -1, 0, 2, &[500])).unwrap(), "0.05");
        assert_eq!(numeric_text(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&numeric(1, 1, 0, 0, &[7])).unwrap(), "70000");
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn timestamps_read_as_text_in_utc() {
        let micros = 1_500_000_000_i64; // 25 minutes after 2000-01-01 00:00 UTC
        let (at, later, day) = (micros.to_be_bytes(), (micros + 5).to_be_bytes(), (-1_i32).to_be_bytes());
        let cell = pg_cell(&Type::TIMESTAMPTZ, &at).unwrap();
        assert_eq!(cell, Cell::Text(Cow::Owned("2000-01-01T00:25:00Z".into())));
        let cell = pg_cell(&Type::TIMESTAMP, &later).unwrap();
        assert_eq!(cell, Cell::Text(Cow::Owned("2000-01-01 00:25:00.000005".into())));
        let cell = pg_cell(&Type::DATE, &day).unwrap();
        assert_eq!(cell, Cell::Text(Cow::Owned("1999-12-31".into())));
        assert!(pg_cell(&Type::INT8, &[1, 2]).is_err());
    }

    #[test]
    fn an_oid_and_a_real_read_as_postgresql_prints_them() {
        assert_eq!(
            pg_cell(&Type::OID, &4_000_000_000_u32.to_be_bytes()).unwrap(),
            Cell::Int(4_000_000_000)
        );
        assert_eq!(pg_cell(&Type::FLOAT4, &0.1_f32.to_be_bytes()).unwrap(), Cell::Real(0.1));
        assert!(matches!(pg_cell(&Type::FLOAT4, &f32::NAN.to_be_bytes()).unwrap(), Cell::Real(v) if v.is_nan()));
        assert_eq!(
            pg_cell(&Type::JSON, "\"Attente pi\\u00e8ce\"".as_bytes()).unwrap(),
            Cell::Text("Attente pièce".into()),
            "a JSON string: its content"
        );
        assert_eq!(
            pg_cell(&Type::JSONB, b"\x01\"Diagnostic\"").unwrap(),
            Cell::Text("Diagnostic".into())
        );
        assert_eq!(
            pg_cell(&Type::JSON, br#"{"stage": "x"}"#).unwrap(),
            Cell::Text(r#"{"stage": "x"}"#.into()),
            "any other value: its text"
        );
        assert_eq!(pg_cell(&Type::JSON, b"12").unwrap(), Cell::Text("12".into()));
        assert_eq!(pg_cell(&Type::JSON, b" null ").unwrap(), Cell::Null, "JSON null: NULL");
        assert_eq!(
            pg_cell(&Type::JSON, br#""Diag\u0000nostic""#).unwrap(),
            Cell::Text(r#""Diag\u0000nostic""#.into()),
            "a string no text column takes: its JSON text"
        );
    }

    #[test]
    fn cells_convert_as_sqlite_types_them() {
        assert_eq!(i64::from_cell(Cell::Int(5)), Ok(5));
        assert!(i64::from_cell(Cell::Text("5".into())).is_err());
        assert_eq!(f64::from_cell(Cell::Int(2)), Ok(2.0));
        assert_eq!(Option::<String>::from_cell(Cell::Null), Ok(None));
        assert!(String::from_cell(Cell::Null).is_err());
        assert_eq!(u8::from_cell(Cell::Int(300)), Err("300 is out of range".into()));
        assert_eq!(Channel::from_cell(Cell::Text("sms".into())), Ok(Channel::Sms));
        assert!(Channel::from_cell(Cell::Text("fax".into())).is_err());
    }
}
