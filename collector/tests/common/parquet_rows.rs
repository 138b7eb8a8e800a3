//! Reads Parquet files back as JSON rows (one object per row, columns by name), so tests can
//! compare whole rows against literals.

use std::fs::File;
use std::path::Path;

use arrow::json::ArrayWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub fn read_rows(dir: &Path) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for path in super::parquet_files(dir) {
        let file = File::open(&path).expect("open parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        let mut writer = ArrayWriter::new(Vec::new());
        for batch in reader {
            writer.write(&batch.expect("batch")).expect("to json");
        }
        writer.finish().expect("finish");
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            continue;
        }
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("json rows");
        rows.extend(parsed);
    }
    rows
}
