//! Pulls the `message_id` column out of one Parquet file and nothing else.

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{BenchError, Result};

const COLUMN: &str = "message_id";

pub fn message_ids(data: Bytes, name: &str) -> Result<Vec<String>> {
    let err = |detail: String| BenchError::Parquet {
        name: name.to_owned(),
        detail,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| err(e.to_string()))?;
    let schema = builder.parquet_schema();
    let leaf = schema
        .columns()
        .iter()
        .position(|c| c.path().string() == COLUMN)
        .ok_or_else(|| err(format!("no {COLUMN} column")))?;
    let mask = ProjectionMask::leaves(schema, [leaf]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        // Whatever string encoding the writer chose (plain, large, view, dictionary), cast
        // to plain UTF-8 once rather than matching each.
        let col = arrow::compute::cast(batch.column(0), &DataType::Utf8)
            .map_err(|e| err(e.to_string()))?;
        let strings = col.as_string::<i32>();
        out.extend(strings.iter().flatten().map(str::to_owned));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;

    use super::*;

    /// A Parquet file whose `message_id` column holds `ids`.
    pub(crate) fn file_with_ids(ids: &[&str]) -> Vec<u8> {
        let column = StringArray::from(ids.to_vec());
        let batch = RecordBatch::try_from_iter([(
            "message_id",
            Arc::new(column) as arrow::array::ArrayRef,
        )])
        .unwrap();
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        buf
    }

    #[test]
    fn reads_only_message_ids_and_skips_nulls() {
        let ids = StringArray::from(vec![Some("a"), None, Some("c")]);
        let other = Int64Array::from(vec![1, 2, 3]);
        let batch = RecordBatch::try_from_iter([
            ("n", Arc::new(other) as arrow::array::ArrayRef),
            ("message_id", Arc::new(ids) as arrow::array::ArrayRef),
        ]);
        let Ok(batch) = batch else { panic!("batch") };
        let mut buf = Vec::new();
        let written = ArrowWriter::try_new(&mut buf, batch.schema(), None)
            .and_then(|mut w| w.write(&batch).and_then(|()| w.close()));
        assert!(written.is_ok());
        let got = message_ids(Bytes::from(buf), "t").unwrap_or_default();
        assert_eq!(got, vec!["a".to_owned(), "c".to_owned()]);
        assert!(message_ids(Bytes::from_static(b"nope"), "t").is_err());
    }
}
