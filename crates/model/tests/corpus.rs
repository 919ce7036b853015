//! Every corpus file explodes to the expected events; snapshots pin the full output.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use serde_json::{Value, json};
use wagate_model::{Event, Kind};

/// The snapshot form of an event: every field but `payload`/`contact`, whose exactness is
/// checked separately (they must be slices of the body).
fn summary(e: &Event<'_>) -> Value {
    let mut v: Value = serde_json::from_str(&e.to_json()).expect("event JSON");
    let o = v.as_object_mut().expect("object");
    let payload = o.remove("payload");
    o.remove("contact");
    o.insert(
        "payload_bytes".into(),
        json!(e.payload.as_ref().map(|p| p.get().len())),
    );
    if let Some(p) = payload {
        // Show what the payload is (its keys) without the content.
        let keys: Vec<String> = p
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        o.insert("payload_keys".into(), json!(keys));
    }
    v
}

/// The bytes of `inner` lie inside `outer` (borrowed, not re-serialized).
fn is_slice_of(inner: &str, outer: &[u8]) -> bool {
    let (s, e) = (
        inner.as_ptr() as usize,
        inner.as_ptr() as usize + inner.len(),
    );
    let (os, oe) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    s >= os && e <= oe
}

#[test]
fn every_corpus_file_snapshot() {
    let files = corpus_files();
    assert!(
        files.len() >= 60,
        "corpus incomplete: {} files",
        files.len()
    );
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(&path).unwrap();
        let events = events(&name, &body);
        assert!(!events.is_empty(), "{name}: no events");

        // Invariants that hold for every real payload.
        let mut ids = HashSet::new();
        for e in &events {
            assert!(ids.insert(e.id.clone()), "{name}: duplicate id {}", e.id);
            assert!(
                !matches!(e.kind, Kind::Invalid | Kind::Unknown),
                "{name}: {:?} {:?}",
                e.kind,
                e.reason
            );
            let p = e
                .payload
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no payload"));
            assert!(
                is_slice_of(p.get(), &body),
                "{name}: payload is not the received bytes"
            );
            if let Some(c) = &e.contact {
                assert!(
                    is_slice_of(c.get(), &body),
                    "{name}: contact is not the received bytes"
                );
            }
            assert!(!e.dedupe_key.is_empty() && !e.conversation_key.is_empty());
        }
        let dedupe: HashSet<_> = events.iter().map(|e| &e.dedupe_key).collect();
        assert_eq!(
            dedupe.len(),
            events.len(),
            "{name}: two events share a dedupe key"
        );

        if name.starts_with("cloud_batch_") {
            // 1000-event batches: pin counts and a sample, not 1000 entries.
            let mut by_type = BTreeMap::new();
            for e in &events {
                *by_type
                    .entry(format!("{}/{}", e.kind, e.type_.as_deref().unwrap_or("-")))
                    .or_insert(0) += 1;
            }
            let sample: Vec<Value> = if events.len() > 6 {
                events[..3]
                    .iter()
                    .chain(&events[events.len() - 3..])
                    .map(summary)
                    .collect()
            } else {
                events.iter().map(summary).collect()
            };
            insta::assert_json_snapshot!(
                name.clone(),
                json!({ "count": events.len(), "by_type": by_type, "sample": sample })
            );
        } else {
            let all: Vec<Value> = events.iter().map(summary).collect();
            insta::assert_json_snapshot!(name.clone(), all);
        }
    }
}

/// Expected (kind, type) lists, stated independently of the snapshots.
#[test]
fn kinds_and_types_per_file() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("cloud_msg_text.json", &[("message", "text")]),
        (
            "cloud_msg_unsupported_poll.json",
            &[("message", "unsupported")],
        ),
        (
            "cloud_msg_system_user_changed_user_id.json",
            &[("message", "system")],
        ),
        ("cloud_status_failed_131047.json", &[("status", "failed")]),
        ("cloud_status_played_voice.json", &[("status", "played")]),
        ("cloud_value_errors_130429.json", &[("error", "130429")]),
        (
            "cloud_batch_multi_message_one_change.json",
            &[
                ("message", "text"),
                ("message", "text"),
                ("message", "text"),
            ],
        ),
        ("cloud_field_smb_message_echoes.json", &[("echo", "text")]),
        (
            "cloud_field_flows_status_change.json",
            &[("ops", "FLOW_STATUS_CHANGE")],
        ),
        (
            "cloud_field_account_update_violation.json",
            &[("ops", "ACCOUNT_VIOLATION")],
        ),
        (
            "cloud_field_group_lifecycle_update.json",
            &[("ops", "group_create")],
        ),
        (
            "cloud_field_user_preferences_stop_marketing.json",
            &[("ops", "stop")],
        ),
        (
            "cloud_field_unknown_future_field.json",
            &[("ops", "SOMETHING_NEW")],
        ),
        ("wasender_messages_upsert_text.json", &[("message", "text")]),
        (
            "wasender_messages_update_status.json",
            &[("status", "delivered")],
        ),
        (
            "wasender_message_receipt_update_group.json",
            &[("status", "delivered")],
        ),
        (
            "wasender_messages_reaction.json",
            &[("message", "reaction")],
        ),
        (
            "wasender_session_status_disconnected.json",
            &[("ops", "session.status")],
        ),
        ("wasender_chats_upsert.json", &[("ops", "chats.upsert")]),
        (
            "wasender_unknown_event_future.json",
            &[("ops", "hypothetical.newevent")],
        ),
        (
            "evolution_messages_upsert_text.json",
            &[("message", "text")],
        ),
    ];
    for (file, want) in cases {
        let body = read(file);
        let got: Vec<(String, String)> = events("r", &body)
            .iter()
            .map(|e| {
                (
                    e.kind.to_string(),
                    e.type_.as_deref().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, t)| (k.to_string(), t.to_string()))
            .collect();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn multi_change_batch_keeps_every_update_in_order() {
    let body = read("cloud_batch_multi_change_messages_and_statuses.json");
    let ev = events("r", &body);
    let kinds: Vec<Kind> = ev.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&Kind::Message) && kinds.contains(&Kind::Status),
        "{kinds:?}"
    );
    // statuses, messages, statuses: the message events sit between status events.
    let first_msg = kinds.iter().position(|k| *k == Kind::Message).unwrap();
    let last_msg = kinds.iter().rposition(|k| *k == Kind::Message).unwrap();
    assert!(kinds[..first_msg].iter().all(|k| *k == Kind::Status) && first_msg > 0);
    assert!(kinds[last_msg + 1..].iter().all(|k| *k == Kind::Status) && last_msg + 1 < kinds.len());
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.id, format!("r:{i}"));
    }
}

#[test]
fn users_are_resolved() {
    // Phone + BSUID: keyed by phone, BSUID kept.
    let body = read("cloud_msg_text_bsuid_with_phone.json");
    let e = &events("r", &body)[0];
    assert_eq!(e.wa_id.as_deref(), Some("15550001234"));
    assert_eq!(e.user_id.as_deref(), Some("US.1000000000000001"));
    assert_eq!(e.name.as_deref(), Some("Test User"));
    assert_eq!(e.conversation_key, "100000000000101:15550001234");

    // Phone hidden: the BSUID keys the conversation; username from contacts.
    let body = read("cloud_status_delivered_bsuid_recipient.json");
    let e = &events("r", &body)[0];
    assert_eq!(e.wa_id, None);
    assert_eq!(e.user_id.as_deref(), Some("US.1000000000000003"));
    assert_eq!(e.username.as_deref(), Some("@testuser3"));
    assert_eq!(e.conversation_key, "100000000000101:US.1000000000000003");

    // Group status: the group keys the conversation, the participant is the user.
    let body = read("cloud_status_group_sent.json");
    let e = &events("r", &body)[0];
    assert_eq!(
        e.group_id.as_deref(),
        Some("Y2FwaV9ncm91cDoxNTU1MDAwMTAwMDoxMjAzNjMwMDAwMDAwMDAwMDEZD")
    );
    assert_eq!(e.wa_id.as_deref(), Some("15550001235"));
    assert!(e.conversation_key.starts_with("100000000000101:group:"));

    // Batch with two users: each message gets its own contact's name.
    let body = read("cloud_batch_multi_message_one_change.json");
    let ev = events("r", &body);
    let users: HashSet<_> = ev
        .iter()
        .map(|e| (e.wa_id.clone(), e.name.clone()))
        .collect();
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(ev.iter().all(|e| e.name.is_some()));

    // Escaped wire form: text is unescaped.
    let body = read("cloud_msg_image_wire_escaped.json");
    let e = &events("r", &body)[0];
    assert_eq!(e.name.as_deref(), Some("José Test"));

    // WasenderAPI group reply: group jid, participant phone, push name.
    let body = read("wasender_messages_upsert_group_reply.json");
    let e = &events("r", &body)[0];
    assert_eq!(e.group_id.as_deref(), Some("120363000000000001@g.us"));
    assert_eq!(e.wa_id.as_deref(), Some("15550001235"));
    assert_eq!(e.name.as_deref(), Some("Test User Two"));
    assert_eq!(e.conversation_key, "test:120363000000000001@g.us");
}

#[test]
fn timestamps_are_normalized() {
    // Meta: unix seconds as a string.
    assert_eq!(
        events("r", &read("cloud_msg_text.json"))[0]
            .timestamp
            .as_deref(),
        Some("2026-01-01T00:00:10Z")
    );
    // WasenderAPI: milliseconds.
    let body = read("wasender_messages_update_status.json");
    let e = &events("r", &body)[0];
    assert_eq!(e.timestamp.as_deref(), Some("2026-01-01T00:12:00.467Z"));
    assert_eq!(e.received_at, "2026-01-01T00:15:00Z");
}

#[test]
fn large_batch_explodes_to_1000_messages() {
    let body = read("cloud_batch_large_1000_messages.json");
    let ev = events("big", &body);
    assert_eq!(ev.len(), 1000);
    assert!(
        ev.iter()
            .all(|e| e.kind == Kind::Message && e.dedupe_key.starts_with("msg:wamid."))
    );
    let keys: HashSet<_> = ev.iter().map(|e| e.dedupe_key.as_str()).collect();
    assert_eq!(keys.len(), 1000);
    assert!(ev.iter().all(|e| e.name.is_some() && e.wa_id.is_some()));

    let body = read("cloud_batch_oversize_1000_messages_over_1mib.json");
    assert!(body.len() > 1 << 20);
    assert_eq!(events("big2", &body).len(), 1000);
}
