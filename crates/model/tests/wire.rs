//! Meta's escaped wire form and pretty-printed JSON give identical events.

mod common;

use common::*;
use serde_json::Value;

/// Compares two explosions field by field; `payload`/`contact` compare as parsed JSON (the
/// bytes differ by escaping and whitespace, the content must not).
fn assert_same(a_body: &[u8], b_body: &[u8], what: &str) {
    let a = events("r", a_body);
    let b = events("r", b_body);
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(normalized(x), normalized(y), "{what}");
        assert_ne!(x.payload.as_ref().unwrap().get(), "");
    }
}

#[test]
fn unicode_wire_file_equals_its_pretty_printed_counterpart() {
    let wire = read("cloud_msg_text_unicode_wire_escaped.json");
    let pretty = read("cloud_msg_text_unicode_heavy.json");
    assert_ne!(wire, pretty);
    assert_same(&wire, &pretty, "unicode");
    // The payload keeps the wire bytes as received (escapes included).
    let e = &events("r", &wire)[0];
    assert!(e.payload.as_ref().unwrap().get().contains("\\ud83d\\ude00"));
}

#[test]
fn every_wire_file_equals_its_pretty_printed_form() {
    let wire_files: Vec<_> = corpus_files()
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("_wire"))
        .collect();
    assert!(wire_files.len() >= 2);
    for path in wire_files {
        let wire = std::fs::read(&path).unwrap();
        let v: Value = serde_json::from_slice(&wire).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        assert_same(&wire, &pretty, &path.display().to_string());
    }
}
