//! One Arrow value at a time in PostgreSQL's binary COPY format, read straight from the columns:
//! text as its bytes, jsonb as its version byte and the JSON text (the server parses it once),
//! timestamps as microseconds since 2000-01-01.

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
    Text(&'a str),
    Json(&'a str),
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
            Cell::Text(text) => return text.to_sql(ty, out),
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
                Kind::Text => Cell::Text(array.as_string::<i32>().value(row)),
                Kind::Jsonb => Cell::Json(array.as_string::<i32>().value(row)),
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
