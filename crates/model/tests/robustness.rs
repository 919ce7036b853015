//! Bad input never panics and always yields at least one event; bounded property tests (the
//! longer-running fuzz target lives in `fuzz/`).

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use wagate_model::{Kind, Provider, RawRequest, explode};

const PROVIDERS: [Provider; 3] = [Provider::Meta, Provider::Wasender, Provider::Hmac];

fn explode_all(body: &[u8]) {
    for provider in PROVIDERS {
        let req = RawRequest {
            id: "p",
            source: "s",
            provider,
            received_at: received_at(),
            body,
        };
        let ev = explode(&req);
        assert!(!ev.is_empty());
        for e in &ev {
            // Every event serializes to one valid JSON line.
            let line = e.to_json();
            assert!(!line.contains('\n'));
            serde_json::from_str::<Value>(&line).unwrap();
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::from),
        prop_oneof![
            Just("whatsapp_business_account"),
            Just("messages"),
            Just("statuses"),
            Just("entry"),
            Just("changes"),
            Just("value"),
            Just("field"),
            Just("id"),
            Just("key"),
            Just("data"),
            Just("event"),
            Just("1767225600"),
            Just("1767225600000"),
            Just(""),
            Just("group"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("object".to_owned()),
                    Just("entry".to_owned()),
                    Just("changes".to_owned()),
                    Just("field".to_owned()),
                    Just("value".to_owned()),
                    Just("messages".to_owned()),
                    Just("statuses".to_owned()),
                    Just("errors".to_owned()),
                    Just("contacts".to_owned()),
                    Just("metadata".to_owned()),
                    Just("id".to_owned()),
                    Just("from".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("type".to_owned()),
                    Just("event".to_owned()),
                    Just("data".to_owned()),
                    Just("key".to_owned()),
                    Just("remoteJid".to_owned()),
                    Just("message_echoes".to_owned()),
                    Just("status".to_owned()),
                    ".{0,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        explode_all(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        explode_all(&serde_json::to_vec(&v).unwrap());
    }

    /// Arbitrary values inside a valid Meta envelope.
    #[test]
    fn arbitrary_meta_changes_never_panic(field in arb_json(), value in arb_json(), entry_id in arb_json()) {
        let body = json!({"object": "whatsapp_business_account",
            "entry": [{"id": entry_id, "changes": [{"field": field, "value": value}]}]});
        explode_all(&serde_json::to_vec(&body).unwrap());
    }

    /// Arbitrary values inside a valid WasenderAPI envelope.
    #[test]
    fn arbitrary_wasender_data_never_panics(event in arb_json(), data in arb_json()) {
        let body = json!({"event": event, "timestamp": 1767225600, "data": data});
        explode_all(&serde_json::to_vec(&body).unwrap());
    }

    /// Truncating a real payload anywhere gives exactly one `invalid` event.
    #[test]
    fn truncated_corpus_is_invalid(cut in 1usize..700) {
        let body = read("cloud_msg_text.json");
        let cut = cut.min(body.len() - 2);
        let ev = events("r", &body[..cut]);
        prop_assert_eq!(ev.len(), 1);
        prop_assert_eq!(ev[0].kind, Kind::Invalid);
    }
}

#[test]
fn non_json_is_one_invalid_event() {
    for body in [
        &b""[..],
        b"   ",
        b"not json",
        b"{\"a\":",
        b"\xff\xfe",
        b"{}{}",
    ] {
        let ev = events("r", body);
        assert_eq!(ev.len(), 1, "{body:?}");
        assert_eq!(ev[0].kind, Kind::Invalid);
        assert!(ev[0].reason.is_some());
        assert!(ev[0].payload.is_none());
        assert!(ev[0].dedupe_key.starts_with("invalid:"));
    }
}

#[test]
fn unknown_envelopes_say_why() {
    let cases: &[(Provider, &[u8])] = &[
        (Provider::Meta, br#"{"object":"page","entry":[]}"#),
        (Provider::Meta, br#"[1,2,3]"#),
        (
            Provider::Meta,
            br#"{"object":"whatsapp_business_account","entry":[]}"#,
        ),
        (
            Provider::Meta,
            br#"{"object":"whatsapp_business_account","entry":[42]}"#,
        ),
        (Provider::Wasender, br#"{"foo":1}"#),
        (Provider::Hmac, br#""just a string""#),
    ];
    for (provider, body) in cases {
        let req = RawRequest {
            id: "r",
            source: "s",
            provider: *provider,
            received_at: received_at(),
            body,
        };
        let ev = explode(&req);
        assert_eq!(ev.len(), 1, "{}", String::from_utf8_lossy(body));
        assert_eq!(
            ev[0].kind,
            Kind::Unknown,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(ev[0].reason.is_some());
    }
}

#[test]
fn odd_but_readable_meta_shapes_are_kept() {
    // An unreadable message element next to a good one: the good one is not lost.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",
        "value":{"metadata":{"phone_number_id":"101"},"messages":[7,{"id":"wamid.X","from":"155","type":"text"}]}}]}]}"#;
    let ev = events("r", body);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].kind, Kind::Unknown);
    assert_eq!(ev[1].dedupe_key, "msg:wamid.X");
    // An empty messages change still leaves a trace.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[]}}]}]}"#;
    let ev = events("r", body);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, Kind::Ops);
    assert!(ev[0].reason.is_some());
}
