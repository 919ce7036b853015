//! Dedupe and conversation keys. Rules and their reasons: `docs/events.md`, "Keys".

use sha2::{Digest, Sha256};

/// SHA-256 over `parts`, each followed by a `0` byte so that `("ab","c")` ≠ `("a","bc")`.
/// JSON parts go through [`feed_compact`] so that pretty-printed and compact copies of one
/// value hash alike. Returns lowercase hex.
pub fn hash(parts: &[Part<'_>]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        match part {
            Part::Text(t) => h.update(t.as_bytes()),
            Part::Json(j) => feed_compact(&mut h, j),
        }
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// One input of [`hash`].
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Hashed as-is.
    Text(&'a str),
    /// Hashed without insignificant whitespace.
    Json(&'a [u8]),
}

/// Feeds JSON bytes to the hasher minus the whitespace outside strings (the bytes are not
/// re-serialized: escapes and key order stay as received).
fn feed_compact(h: &mut Sha256, json: &[u8]) {
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &b) in json.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            h.update(&json[start..i]);
            start = i + 1;
        }
    }
    h.update(&json[start..]);
}

/// Conversation key: `<business>:<user>` where business is the phone number id (or
/// `waba:<id>`, or the source name) and user is `group:<group id>`, the wa_id or the BSUID;
/// just `<business>` when there is no user.
pub fn conversation(
    business: &str,
    group: Option<&str>,
    wa_id: Option<&str>,
    user_id: Option<&str>,
) -> String {
    match (group, wa_id, user_id) {
        (Some(g), _, _) => format!("{business}:group:{g}"),
        (None, Some(w), _) => format!("{business}:{w}"),
        (None, None, Some(u)) => format!("{business}:{u}"),
        (None, None, None) => business.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_outside_strings_is_ignored_inside_kept() {
        let a = hash(&[Part::Json(b"{ \"a\" : [1, 2],\n \"b\": \"x y\" }")]);
        let b = hash(&[Part::Json(b"{\"a\":[1,2],\"b\":\"x y\"}")]);
        let c = hash(&[Part::Json(b"{\"a\":[1,2],\"b\":\"xy\"}")]);
        assert_eq!(a, b);
        assert_ne!(b, c);
        // An escaped quote does not end the string.
        let d = hash(&[Part::Json(br#"{"a":"q\" z"}"#)]);
        let e = hash(&[Part::Json(br#"{"a":"q\"z"}"#)]);
        assert_ne!(d, e);
    }

    #[test]
    fn parts_are_separated() {
        assert_ne!(
            hash(&[Part::Text("ab"), Part::Text("c")]),
            hash(&[Part::Text("a"), Part::Text("bc")])
        );
    }
}
