//! `explode` on arbitrary bytes, as every provider: must not panic, must return at least one
//! event, and every event must serialize to one JSON line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_model::{Provider, RawRequest, explode};

fuzz_target!(|body: &[u8]| {
    for provider in [Provider::Meta, Provider::Wasender, Provider::Hmac, Provider::detect(body)] {
        let req = RawRequest {
            id: "fuzz",
            source: "fuzz",
            provider,
            received_at: std::time::SystemTime::UNIX_EPOCH,
            body,
        };
        let events = explode(&req);
        assert!(!events.is_empty());
        for e in &events {
            let line = e.to_json();
            assert!(!line.is_empty() && !line.contains('\n'));
        }
    }
});
