//! The scalars Zun reads leniently, as python-zunclient and tempest send
//! them: bool-ish [`Flag`]s, [`Lenient`] values in their string form, and
//! the number-or-string fields of the create and update bodies. Each one
//! writes back its plain JSON form, so a client sends what Zun expects.
//!
//! Also the crate's serde helpers for fields whose JSON differs between
//! Zun and Nest (`non_null`, `null_as_default`).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A bool-ish value: a JSON boolean, 0/1, or one of oslo's strict strings
/// (`true/false`, `1/0`, `yes/no`, `on/off`, `y/n`, `t/f`, any case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl FromStr for Flag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Ok(Self(true)),
            "0" | "f" | "false" | "off" | "n" | "no" => Ok(Self(false)),
            _ => Err(format!(
                "{s:?} is not a boolean; valid values are true, false, 0, 1, yes, no, on and off"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Lenient::<Flag>::deserialize(d).map(|l| l.0)
    }
}

/// Written as a JSON boolean.
impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0)
    }
}

/// A value read from a JSON scalar or its string form with `T::from_str`
/// (`"10"` and `10` are the same `timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lenient<T>(pub T);

impl<'de, T> Deserialize<'de> for Lenient<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor<T>(PhantomData<T>);

        impl<T> ScalarVisitor<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            fn parse<E: de::Error>(s: &str) -> Result<Lenient<T>, E> {
                s.parse::<T>().map(Lenient).map_err(|e| {
                    let message = e.to_string();
                    if message.contains(s) {
                        E::custom(message)
                    } else {
                        E::custom(format!("{s:?}: {message}"))
                    }
                })
            }
        }

        impl<T> Visitor<'_> for ScalarVisitor<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            type Value = Lenient<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Self::parse(v)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Self::parse(if v { "true" } else { "false" })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Self::parse(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Self::parse(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Self::parse(&v.to_string())
            }
        }

        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

/// Written as the value itself.
impl<T: Serialize> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A number or its string form (`cpu`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum NumberOrString {
    /// A JSON number.
    Number(f64),
    /// A numeric string.
    Text(String),
}

/// An integer or its string form (`memory`, `disk`, retry counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum IntegerOrString {
    /// A JSON integer.
    Integer(i64),
    /// A digit string.
    Text(String),
}

/// Reads a field that may be absent but not `null` (Zun's `hostname`):
/// with `#[serde(default)]`, absent is `None` and `null` is an error.
pub(crate) fn non_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Reads `null` as the empty value: Zun renders unset fields as `null`
/// where Nest renders `[]`, `{}`, `""` or `false`. With `#[serde(default)]`,
/// an absent field reads the same way.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_zun_spellings_and_write_booleans() {
        let read = |v: serde_json::Value| serde_json::from_value::<Flag>(v).ok();
        assert_eq!(read(serde_json::json!("True")), Some(Flag(true)));
        assert_eq!(read(serde_json::json!("off")), Some(Flag(false)));
        assert_eq!(read(serde_json::json!(1)), Some(Flag(true)));
        assert_eq!(read(serde_json::json!(false)), Some(Flag(false)));
        assert_eq!(read(serde_json::json!("maybe")), None);
        assert_eq!(
            serde_json::to_value(Flag(true)).ok(),
            Some(serde_json::json!(true))
        );
    }

    #[test]
    fn lenient_values_read_strings_and_write_the_value() {
        let read = |v: serde_json::Value| serde_json::from_value::<Lenient<u32>>(v).ok();
        assert_eq!(read(serde_json::json!("10")), Some(Lenient(10)));
        assert_eq!(read(serde_json::json!(3)), Some(Lenient(3)));
        assert_eq!(read(serde_json::json!("-1")), None);
        assert_eq!(
            serde_json::to_value(Lenient(7_u32)).ok(),
            Some(serde_json::json!(7))
        );
    }
}
