//! A text column that costs nothing while it holds only nulls. Most of an event's 19 text
//! fields are absent in most streams (a track stream has no `traits`, `name` or page fields),
//! and appending a null to an Arrow builder still writes an offset and a validity bit per row.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, StringBuilder};
use arrow_array::{ArrayRef, new_null_array};
use arrow_schema::DataType;

pub struct TextColumn {
    values: StringBuilder,
    /// Nulls not yet written to `values`: only ever non-zero while `values` is empty.
    leading_nulls: usize,
}

impl TextColumn {
    /// `rows` and `bytes` are what the column is expected to hold. A column that held no text
    /// last time is given no buffers at all.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let rows = if bytes == 0 { 0 } else { rows };
        Self {
            values: StringBuilder::with_capacity(rows, bytes),
            leading_nulls: 0,
        }
    }

    pub fn append(&mut self, value: Option<&str>) {
        match value {
            None if self.values.is_empty() => self.leading_nulls += 1,
            None => self.values.append_null(),
            Some(text) => {
                if self.leading_nulls > 0 {
                    self.values
                        .append_nulls(std::mem::take(&mut self.leading_nulls));
                }
                self.values.append_value(text);
            }
        }
    }

    /// Text bytes held: what the next batch's column is sized by.
    pub fn text_bytes(&self) -> usize {
        self.values.values_slice().len()
    }

    /// The column so far; the builder is left empty.
    pub fn finish(&mut self) -> ArrayRef {
        let nulls = std::mem::take(&mut self.leading_nulls);
        if nulls > 0 {
            return new_null_array(&DataType::Utf8, nulls);
        }
        Arc::new(self.values.finish())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, StringArray};

    use super::*;

    #[test]
    fn holds_the_same_rows_as_a_plain_builder() {
        let cases: [&[Option<&str>]; 5] = [
            &[],
            &[None, None, None],
            &[None, None, Some("a"), None, Some("")],
            &[Some("x"), None, Some("y")],
            &[Some("only")],
        ];
        for rows in cases {
            for (expected_rows, bytes) in [(0, 0), (rows.len(), 16)] {
                let mut column = TextColumn::with_capacity(expected_rows, bytes);
                rows.iter().for_each(|value| column.append(*value));
                let built = column.finish();
                let expected = StringArray::from(rows.to_vec());
                assert_eq!(built.to_data(), expected.to_data(), "{rows:?}");
                // Finishing leaves it empty and ready for the next batch.
                assert_eq!(column.finish().len(), 0);
            }
        }
    }
}
