//! The columns of an event file, each described once: its name, nullability and what fills it
//! here, its Arrow type by its kind, its place in the file by [`EVENT_COLUMNS`]. The event's
//! storage, the Arrow schema and the order the builders emit columns in all follow from this.

use std::collections::HashMap;

use arrow_schema::{DataType, Field, TimeUnit};

/// An enum of an event's fields of one kind, with `ALL` (declaration order, which is also the
/// order they are stored in), `COUNT`, and each field's column name and nullability.
macro_rules! fields {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$doc:meta])* $variant:ident => $column:literal, nullable: $nullable:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$doc])* $variant, )*
        }

        impl $name {
            pub const COUNT: usize = [$(stringify!($variant)),*].len();
            pub const ALL: [$name; $name::COUNT] = [$($name::$variant),*];

            /// The column this field is stored in.
            pub const fn column(self) -> &'static str {
                match self {
                    $( $name::$variant => $column, )*
                }
            }

            pub const fn nullable(self) -> bool {
                match self {
                    $( $name::$variant => $nullable, )*
                }
            }
        }
    };
}

fields! {
    /// The text fields of an event, each a `Utf8` column.
    pub enum Text {
        /// `messageId` as sent, else a UUIDv7 of the time it arrived.
        MessageId => "message_id", nullable: false;
        /// A track call's `event`.
        Event => "event", nullable: true;
        /// A page or screen call's `name`.
        Name => "name", nullable: true;
        /// A page or screen call's `category`.
        Category => "category", nullable: true;
        /// `userId`; numbers are stored as their digits.
        UserId => "user_id", nullable: true;
        AnonymousId => "anonymous_id", nullable: true;
        GroupId => "group_id", nullable: true;
        PreviousId => "previous_id", nullable: true;
        /// `context.ip` as sent, else the address the request came from.
        ContextIp => "context_ip", nullable: true;
        /// `context.userAgent`.
        ContextUserAgent => "context_user_agent", nullable: true;
        /// `context.library.name`.
        ContextLibraryName => "context_library_name", nullable: true;
        /// `context.library.version`.
        ContextLibraryVersion => "context_library_version", nullable: true;
        /// A page call's `properties.path`, else `context.page.path`; likewise the next three.
        PagePath => "page_path", nullable: true;
        PageUrl => "page_url", nullable: true;
        PageReferrer => "page_referrer", nullable: true;
        PageTitle => "page_title", nullable: true;
        /// JSON text as sent.
        Properties => "properties", nullable: true;
        /// JSON text as sent.
        Traits => "traits", nullable: true;
        /// JSON text as sent, with the batch's keys it lacks and `ip` added.
        Context => "context", nullable: true;
        /// JSON text as sent, with the batch's keys it lacks added.
        Integrations => "integrations", nullable: true;
    }
}

fields! {
    /// The times of an event ([`crate::Times`]), each a UTC microsecond timestamp column.
    pub enum Time {
        /// Client time corrected for clock skew; `received_at` when the client sent no time.
        Timestamp => "timestamp", nullable: false;
        /// `originalTimestamp`, else `timestamp`, as sent.
        OriginalTimestamp => "original_timestamp", nullable: true;
        /// The event's `sentAt`, else the batch's.
        SentAt => "sent_at", nullable: true;
        /// When the request arrived: what files are partitioned by.
        ReceivedAt => "received_at", nullable: false;
    }
}

/// One column of an event file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The stream the event was sent to. It is repeated in every row (as well as in the Hive
    /// path) so a file copied out of its directory still says where it came from.
    Stream,
    /// The call type: `track`, `identify`, `page`, `screen`, `group` or `alias`.
    Type,
    Text(Text),
    Time(Time),
}

/// The columns of an event file, in order.
pub const EVENT_COLUMNS: [Column; 2 + Text::COUNT + Time::COUNT] = [
    Column::Text(Text::MessageId),
    Column::Stream,
    Column::Type,
    Column::Text(Text::Event),
    Column::Text(Text::Name),
    Column::Text(Text::Category),
    Column::Text(Text::UserId),
    Column::Text(Text::AnonymousId),
    Column::Text(Text::GroupId),
    Column::Text(Text::PreviousId),
    Column::Time(Time::Timestamp),
    Column::Time(Time::OriginalTimestamp),
    Column::Time(Time::SentAt),
    Column::Time(Time::ReceivedAt),
    Column::Text(Text::ContextIp),
    Column::Text(Text::ContextUserAgent),
    Column::Text(Text::ContextLibraryName),
    Column::Text(Text::ContextLibraryVersion),
    Column::Text(Text::PagePath),
    Column::Text(Text::PageUrl),
    Column::Text(Text::PageReferrer),
    Column::Text(Text::PageTitle),
    Column::Text(Text::Properties),
    Column::Text(Text::Traits),
    Column::Text(Text::Context),
    Column::Text(Text::Integrations),
];

// Every field has exactly one column: the array's length admits no more, and this admits no
// fewer (a field listed twice would leave another one out).
const _: () = assert!(each_field_listed_once());

const fn each_field_listed_once() -> bool {
    let mut texts = [0u8; Text::COUNT];
    let mut times = [0u8; Time::COUNT];
    let (mut streams, mut types) = (0, 0);
    let mut i = 0;
    while i < EVENT_COLUMNS.len() {
        match EVENT_COLUMNS[i] {
            Column::Stream => streams += 1,
            Column::Type => types += 1,
            Column::Text(text) => texts[text as usize] += 1,
            Column::Time(time) => times[time as usize] += 1,
        }
        i += 1;
    }
    let mut ok = streams == 1 && types == 1;
    let mut j = 0;
    while j < Text::COUNT {
        ok &= texts[j] == 1;
        j += 1;
    }
    let mut k = 0;
    while k < Time::COUNT {
        ok &= times[k] == 1;
        k += 1;
    }
    ok
}

impl Text {
    /// The free-form objects, stored as JSON text. Their columns carry Arrow's canonical JSON
    /// extension type, which the Parquet writer turns into the JSON logical type, so DuckDB
    /// reads them as `JSON` and pyarrow as `extension<arrow.json>` without a cast.
    pub const JSON: [Text; 4] = [
        Text::Properties,
        Text::Traits,
        Text::Context,
        Text::Integrations,
    ];

    pub fn is_json(self) -> bool {
        Text::JSON.contains(&self)
    }
}

pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl Column {
    pub const fn name(self) -> &'static str {
        match self {
            Column::Stream => "stream",
            Column::Type => "type",
            Column::Text(text) => text.column(),
            Column::Time(time) => time.column(),
        }
    }

    pub const fn nullable(self) -> bool {
        match self {
            Column::Stream | Column::Type => false,
            Column::Text(text) => text.nullable(),
            Column::Time(time) => time.nullable(),
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Column::Stream | Column::Type | Column::Text(_) => DataType::Utf8,
            Column::Time(_) => utc_micros(),
        }
    }

    pub fn field(self) -> Field {
        let field = Field::new(self.name(), self.data_type(), self.nullable());
        match self {
            // Arrow's canonical JSON extension type, by its two metadata keys (the typed form
            // is in `arrow-schema`, which `arrow` does not re-export).
            Column::Text(text) if text.is_json() => field.with_metadata(HashMap::from([
                ("ARROW:extension:name".to_owned(), "arrow.json".to_owned()),
                ("ARROW:extension:metadata".to_owned(), String::new()),
            ])),
            _ => field,
        }
    }
}
