//! Meta's webhook wire form of JSON: compact, every non-ASCII character as a lowercase `\uXXXX`
//! escape (UTF-16 surrogate pairs above U+FFFF) and `/` written as `\/`.
//!
//! Meta signs these exact bytes, so a receiver that re-serialises before hashing fails on the first
//! escaped character (testdata/payloads/INDEX.md, "Signature test vectors"). Works on text so the
//! key order of a template is kept as written (Meta's order: `object`, then `entry`).

use std::fmt::Write as _;

/// Appends one character of a JSON string body in wire form.
fn push_escaped_char(out: &mut String, ch: char) {
    match ch {
        '/' => out.push_str("\\/"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c if c.is_ascii() => out.push(c),
        c => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
}

/// Escapes `s` for use inside a JSON string in wire form (without the surrounding quotes).
pub fn escape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => push_escaped_char(&mut out, c),
        }
    }
    out
}

/// Turns JSON text (pretty or compact, non-ASCII raw or escaped) into Meta's wire form:
/// whitespace outside strings removed, existing escapes kept, non-ASCII and `/` escaped.
///
/// The input must be valid JSON; the result is then valid JSON with the same value and key order.
pub fn minify_to_wire(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut chars = json.chars();
    let mut in_string = false;
    while let Some(ch) = chars.next() {
        if !in_string {
            match ch {
                c if c.is_ascii_whitespace() => {}
                '"' => {
                    in_string = true;
                    out.push('"');
                }
                c => out.push(c),
            }
            continue;
        }
        match ch {
            '"' => {
                in_string = false;
                out.push('"');
            }
            '\\' => {
                // An existing escape (`\n`, `\"`, `\u00e9`, `\/`): keep as written.
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            c => push_escaped_char(&mut out, c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_meta() {
        let s = format!(
            "\"{}\"",
            escape_str("caf\u{e9} \u{2615} 😀 a/b \"q\" \\ \n")
        );
        assert_eq!(s, r#""caf\u00e9 \u2615 \ud83d\ude00 a\/b \"q\" \\ \n""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "caf\u{e9} \u{2615} 😀 a/b \"q\" \\ \n");
    }

    #[test]
    fn pretty_corpus_file_becomes_the_signed_wire_file() {
        // The corpus holds the same unicode-heavy message pretty-printed with raw UTF-8 and in
        // Meta's wire form; converting the first must give the second byte for byte.
        let pretty = include_str!("../../../testdata/payloads/cloud_msg_text_unicode_heavy.json");
        let wire =
            include_bytes!("../../../testdata/payloads/cloud_msg_text_unicode_wire_escaped.json");
        assert_eq!(minify_to_wire(pretty).as_bytes(), wire);
    }
}
