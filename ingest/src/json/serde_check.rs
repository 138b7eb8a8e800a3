//! The check as serde_json's own parser walks a value: the scanner's reference in tests.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{MAX_DEPTH, PAIRWISE_KEYS, Unkeepable};

/// The contract of [`super::check`], by serde_json's parser.
pub(crate) fn check<'a>(text: &'a str, keys: &mut Vec<Cow<'a, str>>) -> Result<(), Unkeepable> {
    keys.clear();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Checked { keys, top: true }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| Unkeepable(reason(&e.to_string())))
}

/// serde_json's message in the client's terms, without its position in the object's own text
/// (which would mislead a client looking at its whole request).
fn reason(message: &str) -> String {
    let message = message
        .rsplit_once(" at line ")
        .map_or(message, |(reason, _)| reason);
    if message.contains("surrogate") || message.contains("hex escape") {
        "a string holds a lone surrogate escape (\\ud800-\\udfff without its pair)".to_owned()
    } else if message.contains("number out of range") {
        "a number is beyond the range of a double (about 1.8e308)".to_owned()
    } else if message.contains("recursion limit") {
        format!("it is nested deeper than {MAX_DEPTH} levels")
    } else {
        message.to_owned()
    }
}

/// Walks a value the way serde_json parses it for real: strings are decoded (which refuses lone
/// surrogates) and numbers read as numbers (which refuses those beyond a double). Keys of the
/// objects being walked are pushed on `keys`, so one buffer serves every level.
struct Checked<'k, 'a> {
    keys: &'k mut Vec<Cow<'a, str>>,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Checked<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Checked {
                keys: &mut *self.keys,
                top: false,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.keys.len();
        while let Some(key) = map.next_key::<Key>()? {
            let own = &self.keys[start..];
            if own.len() < PAIRWISE_KEYS && own.contains(&key.0) {
                return Err(twice(&key.0));
            }
            self.keys.push(key.0);
            map.next_value_seed(Checked {
                keys: &mut *self.keys,
                top: false,
            })?;
        }
        let own = &self.keys[start..];
        if own.len() > PAIRWISE_KEYS {
            // Sorted aside: the top level's keys stay in order for `Defaults`.
            let mut sorted: Vec<&Cow<str>> = own.iter().collect();
            sorted.sort_unstable();
            if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(twice(pair[0]));
            }
        }
        if !self.top {
            self.keys.truncate(start);
        }
        Ok(())
    }
}

fn twice<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("the key {key:?} appears twice in one object"))
}

/// An object key, borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
