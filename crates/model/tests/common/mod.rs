//! Shared test helpers: corpus files and a fixed clock.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use wagate_model::{Event, Provider, RawRequest, explode};

/// The webhook corpus shipped with the repository.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/payloads")
}

/// Every `*.json` file of the corpus, sorted by name.
pub fn corpus_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).expect("corpus file")
}

/// 2026-01-01T00:15:00Z.
pub fn received_at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_226_500)
}

pub fn req<'a>(id: &'a str, body: &'a [u8]) -> RawRequest<'a> {
    RawRequest {
        id,
        source: "test",
        provider: Provider::detect(body),
        received_at: received_at(),
        body,
    }
}

pub fn events<'a>(id: &'a str, body: &'a [u8]) -> Vec<Event<'a>> {
    explode(&req(id, body))
}

/// The event as JSON with `payload`/`contact` replaced by their parsed values, so that two
/// events can be compared regardless of the byte formatting of what they carry.
pub fn normalized(e: &Event<'_>) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("event JSON");
    v.as_object_mut().expect("object").remove("id");
    v
}
