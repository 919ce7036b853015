//! Lenient readers: webhook fields change type between API versions (numbers vs numeric
//! strings, objects vs arrays), so nothing here fails on an unexpected shape.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A scalar read as text: strings (borrowed when unescaped), integers and floats become text;
/// `null`, `""`, booleans, objects and arrays become `None` (and are skipped, not rejected).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The text, if any.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Takes the text out.
    pub fn take(self) -> Option<Cow<'a, str>> {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text((!v.is_empty()).then_some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text((!v.is_empty()).then(|| Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text((!v.is_empty()).then_some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(v.is_finite().then(|| Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Text::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Reads `raw` as `T`; any mismatch yields `None` instead of an error.
pub fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// Like [`parse`], but absent or mismatching input yields `T::default()`.
pub fn parse_or_default<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>) -> T {
    raw.and_then(parse).unwrap_or_default()
}

/// The elements of an array field: an array gives its elements, `null`/absent gives nothing,
/// and any other value counts as a one-element array (bridges send `{…}` where `[{…}]` is
/// documented and vice versa).
pub fn elements(raw: Option<&RawValue>) -> Vec<&RawValue> {
    let Some(raw) = raw else { return Vec::new() };
    match raw.get().as_bytes().first() {
        Some(b'[') => parse::<Vec<&RawValue>>(raw).unwrap_or_default(),
        Some(b'n') => Vec::new(),
        Some(_) => vec![raw],
        None => Vec::new(),
    }
}

/// True when `raw` is a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().as_bytes().first() == Some(&b'{')
}

/// The first key of a JSON object that is not in `skip`, e.g. the content kind of a Baileys
/// `message` object (`conversation`, `imageMessage`, ...).
pub fn first_key<'a>(raw: &'a RawValue, skip: &[&str]) -> Option<Cow<'a, str>> {
    struct Keys<'a>(Vec<Cow<'a, str>>);
    impl<'de: 'a, 'a> Deserialize<'de> for Keys<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<'a>(std::marker::PhantomData<&'a ()>);
            impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                type Value = Keys<'a>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = a.next_key::<Cow<'de, str>>()? {
                        a.next_value::<IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V(std::marker::PhantomData))
        }
    }
    let keys: Keys<'a> = parse(raw)?;
    keys.0.into_iter().find(|k| !skip.contains(&k.as_ref()))
}
