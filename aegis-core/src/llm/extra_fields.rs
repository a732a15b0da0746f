//! `Deserialize` for wire types that keep the fields AEGIS does not interpret in `extra`.
//!
//! serde's `#[serde(flatten)]` first reads the whole object into a buffer of
//! `Content` values and then deserializes every field a second time from that buffer. On
//! the gateway's path, every request and every response, that buffering was the largest
//! piece of the JSON work that is AEGIS's own (benches/README, gateway). The impl this
//! macro writes reads each known field once, straight from the input, and only the others
//! into `extra`.

/// Implements `Deserialize` for a struct with the named fields and `extra:
/// serde_json::Map<String, Value>`: `optional` fields take the given value when absent,
/// `required` ones are an error when absent, a known field given twice is an error, and
/// any other field goes to `extra`.
macro_rules! deserialize_keeping_extra {
    ($ty:ident { optional { $($field:ident: $default:expr),* $(,)? } required { $($req:ident),* $(,)? } }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[allow(non_camel_case_types)]
                enum Field {
                    $($field,)*
                    $($req,)*
                    Other(String),
                }
                impl<'de> serde::Deserialize<'de> for Field {
                    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                        struct Name;
                        impl serde::de::Visitor<'_> for Name {
                            type Value = Field;
                            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                                f.write_str("a field name")
                            }
                            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Field, E> {
                                Ok(match name {
                                    $(stringify!($field) => Field::$field,)*
                                    $(stringify!($req) => Field::$req,)*
                                    other => Field::Other(other.to_owned()),
                                })
                            }
                        }
                        deserializer.deserialize_identifier(Name)
                    }
                }
                struct Object;
                impl<'de> serde::de::Visitor<'de> for Object {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($ty), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        $(let mut $field = None;)*
                        $(let mut $req = None;)*
                        let mut extra = serde_json::Map::new();
                        while let Some(key) = map.next_key::<Field>()? {
                            match key {
                                $(Field::$field => {
                                    if $field.is_some() {
                                        return Err(serde::de::Error::duplicate_field(stringify!($field)));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                $(Field::$req => {
                                    if $req.is_some() {
                                        return Err(serde::de::Error::duplicate_field(stringify!($req)));
                                    }
                                    $req = Some(map.next_value()?);
                                })*
                                Field::Other(name) => {
                                    extra.insert(name, map.next_value()?);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: $field.unwrap_or_else(|| $default),)*
                            $($req: $req.ok_or_else(|| serde::de::Error::missing_field(stringify!($req)))?,)*
                            extra,
                        })
                    }
                }
                deserializer.deserialize_map(Object)
            }
        }
    };
}

pub(crate) use deserialize_keeping_extra;
