//! Dedupe and conversation key properties.

mod common;

use common::*;
use wagate_model::Kind;

#[test]
fn same_file_twice_gives_identical_keys() {
    for path in corpus_files() {
        let body = std::fs::read(&path).unwrap();
        let copy = body.clone();
        let a = events("first", &body);
        let b = events("retry", &copy);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.dedupe_key, y.dedupe_key, "{}", path.display());
            assert_eq!(x.conversation_key, y.conversation_key);
            assert_ne!(x.id, y.id, "ids derive from the request id");
        }
    }
}

#[test]
fn statuses_of_one_message_have_different_keys() {
    let sent = read("cloud_status_sent.json");
    let text = String::from_utf8(sent).unwrap();
    assert!(text.contains("\"status\": \"sent\""));
    let mut keys = Vec::new();
    for status in ["sent", "delivered", "read", "played", "failed"] {
        let body = text.replace("\"status\": \"sent\"", &format!("\"status\": \"{status}\""));
        let e = &events("r", body.as_bytes())[0];
        assert_eq!(e.kind, Kind::Status);
        assert_eq!(e.type_.as_deref(), Some(status));
        assert!(e.dedupe_key.ends_with(&format!(":{status}")));
        assert!(e.dedupe_key.contains(e.message_id.as_deref().unwrap()));
        keys.push(e.dedupe_key.clone());
        // Same conversation whatever the status: ordering stays per user.
        assert_eq!(e.conversation_key, "100000000000101:15550001234");
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5);
}

#[test]
fn message_and_its_statuses_share_the_conversation() {
    let (mb, sb) = (
        read("cloud_msg_text.json"),
        read("cloud_status_delivered.json"),
    );
    let m = &events("r", &mb)[0];
    let s = &events("r", &sb)[0];
    assert_eq!(m.conversation_key, s.conversation_key);
    assert_eq!(
        m.dedupe_key,
        format!("msg:{}", m.message_id.as_deref().unwrap())
    );
}

#[test]
fn ops_key_is_a_hash_that_ignores_formatting_but_not_content() {
    let body = read("cloud_field_account_alerts.json");
    let a = &events("r", &body)[0];
    assert_eq!(a.kind, Kind::Ops);
    let hex = a.dedupe_key.strip_prefix("ops:").expect("ops: prefix");
    assert_eq!(hex.len(), 64);
    // The same change written compact and pretty-printed: same key.
    let compact = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","time":5,"changes":[{"field":"account_alerts","value":{"entity_id":"7","alert_info":{"alert_description":"two words"}}}]}]}"#;
    let pretty = br#"{ "object": "whatsapp_business_account",
      "entry": [ { "id": "1", "time": 5, "changes": [ { "field": "account_alerts",
        "value": { "entity_id": "7",
                   "alert_info": { "alert_description": "two words" } } } ] } ] }"#;
    let spaced = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","time":5,"changes":[{"field":"account_alerts","value":{"entity_id":"7","alert_info":{"alert_description":"two  words"}}}]}]}"#;
    let later = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","time":6,"changes":[{"field":"account_alerts","value":{"entity_id":"7","alert_info":{"alert_description":"two words"}}}]}]}"#;
    let key = |b: &[u8]| events("r", b)[0].dedupe_key.clone();
    assert_eq!(key(compact), key(pretty));
    assert_ne!(
        key(compact),
        key(spaced),
        "whitespace inside strings is content"
    );
    assert_ne!(key(compact), key(later), "entry.time is part of the key");
    // Different content: different key.
    let changed = String::from_utf8(body.clone())
        .unwrap()
        .replace("WARNING", "CRITICAL");
    assert_ne!(events("r", changed.as_bytes())[0].dedupe_key, a.dedupe_key);
    assert_eq!(a.conversation_key, "waba:100000000000001");
}

#[test]
fn wasender_update_statuses_differ() {
    let text = String::from_utf8(read("wasender_messages_update_status.json")).unwrap();
    let read_body = text.replace("\"status\": 3", "\"status\": 4");
    let d = &events("r", text.as_bytes())[0];
    let r = &events("r", read_body.as_bytes())[0];
    assert_eq!(r.type_.as_deref(), Some("read"));
    assert_ne!(d.dedupe_key, r.dedupe_key);
    assert_eq!(d.conversation_key, r.conversation_key);
}
