//! Events conform to `docs/event.schema.json` (the keys, required fields and enums it lists).

mod common;

use common::*;
use serde_json::Value;
use wagate_model::{Provider, SCHEMA};

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/event.schema.json");
    serde_json::from_slice(&std::fs::read(path).expect("schema file")).expect("schema JSON")
}

#[test]
fn every_corpus_event_matches_the_schema() {
    let schema = schema();
    let props = schema["properties"].as_object().unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(props["schema"]["const"], SCHEMA);
    let kinds = props["kind"]["enum"].as_array().unwrap();
    let providers = props["provider"]["enum"].as_array().unwrap();
    let mut bodies: Vec<Vec<u8>> = corpus_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    bodies.push(b"not json".to_vec());
    bodies.push(br#"{"object":"page"}"#.to_vec());
    for body in &bodies {
        for e in events("r", body) {
            let line = e.to_json();
            assert!(!line.contains('\n'), "NDJSON line spans lines");
            let v: Value = serde_json::from_str(&line).unwrap();
            let o = v.as_object().unwrap();
            for k in o.keys() {
                assert!(props.contains_key(k), "field `{k}` missing from the schema");
            }
            for k in &required {
                assert!(o.contains_key(*k), "required `{k}` missing: {line}");
            }
            assert!(kinds.contains(&o["kind"]));
            assert!(providers.contains(&o["provider"]));
            for (k, val) in o {
                if !matches!(k.as_str(), "payload" | "contact") {
                    assert!(val.is_string(), "`{k}` is not a string");
                }
            }
        }
    }
}

#[test]
fn provider_names_round_trip() {
    for p in [Provider::Meta, Provider::Wasender, Provider::Hmac] {
        assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
    }
    assert_eq!("other".parse::<Provider>(), Ok(Provider::Hmac));
    assert!("telegram".parse::<Provider>().is_err());
    assert_eq!(
        Provider::detect(&read("cloud_msg_text.json")),
        Provider::Meta
    );
    assert_eq!(
        Provider::detect(&read("wasender_chats_upsert.json")),
        Provider::Wasender
    );
    assert_eq!(
        Provider::detect(&read("evolution_messages_upsert_text.json")),
        Provider::Hmac
    );
    assert_eq!(Provider::detect(b"garbage"), Provider::Hmac);
}
