//! The SQL a stream's table is made and loaded with, derived from its Arrow schema so events and
//! dead letters each get their own shape from the model's column table.

use arrow::datatypes::{DataType, Field};
use eventkit_model::{Table, Text};
use tokio_postgres::types::Type;

use super::PostgresError;
use crate::sink::SinkError;

/// A quoted identifier: stream names are validated upstream, but quoting keeps any name a name.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// How one Arrow column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Jsonb,
    Timestamptz,
    BigInt,
}

impl Kind {
    fn of(field: &Field) -> Result<Self, SinkError> {
        let json = Text::JSON.iter().any(|text| text.column() == field.name());
        match field.data_type() {
            DataType::Utf8 if json => Ok(Kind::Jsonb),
            DataType::Utf8 => Ok(Kind::Text),
            DataType::Timestamp(_, _) => Ok(Kind::Timestamptz),
            DataType::UInt32 => Ok(Kind::BigInt),
            other => Err(SinkError::Postgres(PostgresError::UnsupportedColumn {
                column: field.name().clone(),
                data_type: other.to_string(),
            })),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Jsonb => "jsonb",
            Kind::Timestamptz => "timestamptz",
            Kind::BigInt => "bigint",
        }
    }

    pub fn pg_type(self) -> Type {
        match self {
            Kind::Text => Type::TEXT,
            Kind::Jsonb => Type::JSONB,
            Kind::Timestamptz => Type::TIMESTAMPTZ,
            Kind::BigInt => Type::INT8,
        }
    }
}

/// A stream's table: its columns in the batch's order, and what makes a row unique.
#[derive(Debug)]
pub struct TableShape {
    pub stream: String,
    pub columns: Vec<(String, Kind, bool)>,
}

/// The staging table lives in the session's temporary schema and is dropped at commit.
const STAGE: &str = "eventkit_stage";

impl TableShape {
    pub fn of(table: &Table) -> Result<Self, SinkError> {
        let columns = table
            .rows
            .schema()
            .fields()
            .iter()
            .map(|f| Ok((f.name().clone(), Kind::of(f)?, f.is_nullable())))
            .collect::<Result<_, SinkError>>()?;
        Ok(Self {
            stream: table.stream.clone(),
            columns,
        })
    }

    fn is_events(&self) -> bool {
        self.columns
            .iter()
            .any(|(name, _, _)| name == Text::MessageId.column())
    }

    fn target(&self, schema: &str) -> String {
        format!("{}.{}", quote(schema), quote(&self.stream))
    }

    fn column_list(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|(n, _, _)| quote(n)).collect();
        names.join(", ")
    }

    pub fn types(&self) -> Vec<Type> {
        self.columns
            .iter()
            .map(|(_, kind, _)| kind.pg_type())
            .collect()
    }

    /// Events are unique by `message_id`. A dead letter has no id of its own: the request it
    /// came in (arrival time, stream), its place there and its text identify it.
    pub fn create_statements(&self, schema: &str) -> String {
        let mut definitions: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind, nullable)| {
                let null = if *nullable { "" } else { " NOT NULL" };
                format!("{} {}{null}", quote(name), kind.sql())
            })
            .collect();
        if self.is_events() {
            definitions.push(format!("PRIMARY KEY ({})", quote(Text::MessageId.column())));
        }
        let target = self.target(schema);
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS {target} ({});",
            definitions.join(", ")
        );
        if !self.is_events() {
            let index = quote(&format!("{}_key", self.stream));
            sql.push_str(&format!(
                " CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {target} \
                 (received_at, stream, \"index\", md5(raw));"
            ));
        }
        sql
    }

    pub fn create_stage(&self, schema: &str) -> String {
        format!(
            "CREATE TEMP TABLE {STAGE} (LIKE {}) ON COMMIT DROP",
            self.target(schema)
        )
    }

    pub fn copy_into_stage(&self) -> String {
        format!(
            "COPY {STAGE} ({}) FROM STDIN (FORMAT binary)",
            self.column_list()
        )
    }

    /// Rows already stored (a redelivered table) are skipped, not errors.
    pub fn move_from_stage(&self, schema: &str) -> String {
        let columns = self.column_list();
        format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {STAGE} ON CONFLICT DO NOTHING",
            self.target(schema)
        )
    }
}
