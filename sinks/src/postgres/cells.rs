//! One Arrow value at a time in PostgreSQL's binary COPY format, read straight from the columns:
//! text as its bytes, jsonb as its version byte and the JSON text (the server parses it once),
//! timestamps as microseconds since 2000-01-01.

use std::borrow::Cow;
use std::error::Error;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{TimestampMicrosecondType, UInt32Type};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::ddl::{Kind, TableShape};

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01T00:00:00Z.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// jsonb's binary format version.
const JSONB_VERSION: u8 = 1;

#[derive(Debug)]
pub enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Json(Cow<'a, str>),
    Micros(i64),
    BigInt(i64),
}

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Cell::Null => return Ok(IsNull::Yes),
            Cell::Text(text) => return text.as_ref().to_sql(ty, out),
            Cell::Json(json) => {
                out.put_u8(JSONB_VERSION);
                out.put_slice(json.as_bytes());
            }
            Cell::Micros(micros) => out.put_i64(micros - PG_EPOCH_MICROS),
            Cell::BigInt(value) => out.put_i64(*value),
        }
        Ok(IsNull::No)
    }

    /// The COPY's types come from the same shape as the cells, so each cell matches its column.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A batch's columns with the kind each is stored as.
pub struct Cells<'a> {
    columns: Vec<(&'a ArrayRef, Kind)>,
}

impl<'a> Cells<'a> {
    pub fn of(rows: &'a RecordBatch, shape: &TableShape) -> Self {
        let columns = rows
            .columns()
            .iter()
            .zip(&shape.columns)
            .map(|(array, (_, kind, _))| (array, *kind))
            .collect();
        Self { columns }
    }

    pub fn row(&self, row: usize) -> impl ExactSizeIterator<Item = Cell<'a>> + '_ {
        self.columns.iter().map(move |(array, kind)| {
            if array.is_null(row) {
                return Cell::Null;
            }
            match kind {
                Kind::Text => Cell::Text(text_without_nul(array.as_string::<i32>().value(row))),
                Kind::Jsonb => Cell::Json(json_without_nul(array.as_string::<i32>().value(row))),
                Kind::Timestamptz => {
                    Cell::Micros(array.as_primitive::<TimestampMicrosecondType>().value(row))
                }
                Kind::BigInt => {
                    Cell::BigInt(i64::from(array.as_primitive::<UInt32Type>().value(row)))
                }
            }
        })
    }
}

/// PostgreSQL text cannot hold NUL, and jsonb refuses the `\u0000` escape. Either would fail
/// the whole table on every retry, so the character becomes U+FFFD, as an undecodable byte would.
const REPLACEMENT: &str = "\u{fffd}";
const JSON_NUL: &str = "\\u0000";
const JSON_REPLACEMENT: &str = "\\ufffd";

fn text_without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', REPLACEMENT))
    } else {
        Cow::Borrowed(text)
    }
}

/// Replaces each `\u0000` escape; a `\\u0000` (an escaped backslash, then `u0000`) is text.
fn json_without_nul(json: &str) -> Cow<'_, str> {
    if !json.contains(JSON_NUL) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find(JSON_NUL) {
        let before = &rest[..at];
        let backslashes = before.bytes().rev().take_while(|b| *b == b'\\').count();
        out.push_str(before);
        // The match's own backslash is escaped by an odd run before it: then it is not an escape.
        out.push_str(if backslashes % 2 == 0 {
            JSON_REPLACEMENT
        } else {
            JSON_NUL
        });
        rest = &rest[at + JSON_NUL.len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nul_escapes_are_replaced() {
        assert_eq!(
            json_without_nul(r#"{"a":"x\u0000y"}"#),
            r#"{"a":"x\ufffdy"}"#
        );
        assert_eq!(
            json_without_nul(r#"{"a":"x\\u0000y"}"#),
            r#"{"a":"x\\u0000y"}"#
        );
        assert_eq!(
            json_without_nul(r#"{"a":"\\\u0000"}"#),
            r#"{"a":"\\\ufffd"}"#
        );
        assert_eq!(json_without_nul(r#"{"a":"\u00001"}"#), r#"{"a":"\ufffd1"}"#);
        assert_eq!(text_without_nul("a\0b"), "a\u{fffd}b");
    }
}
