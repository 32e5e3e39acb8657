//! Field-name introspection: the keys a `#[derive(Deserialize)]` struct accepts, read from serde
//! itself so that no list of keys is written twice by hand.
//!
//! Serde's derive calls `deserialize_struct(name, FIELDS, visitor)`; [`field_names`] hands it a
//! deserializer that records `FIELDS` and then stops with an error.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The keys a struct deserializes (after `rename`), in declaration order; empty for non-structs.
pub(crate) fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The recorder always fails, on purpose: it never produces a value.
    let _ = T::deserialize(Recorder {
        fields: &mut fields,
    });
    fields
}

/// A deserializer that only records the field list of the struct asked for.
struct Recorder<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        Err(de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentConfig, Logging, WatchRoot};

    #[test]
    fn records_struct_fields_in_order() {
        assert_eq!(
            field_names::<AgentConfig>(),
            [
                "agent",
                "watch",
                "readiness",
                "transcode",
                "captions",
                "disk",
                "alerts",
                "logging",
                "controller",
                "telemetry"
            ]
        );
        assert_eq!(field_names::<Logging>()[..2], ["level", "format"]);
        assert_eq!(field_names::<WatchRoot>()[..2], ["source", "output"]);
    }

    #[test]
    fn non_structs_have_no_fields() {
        assert!(field_names::<u32>().is_empty());
        assert!(field_names::<Vec<String>>().is_empty());
    }
}
