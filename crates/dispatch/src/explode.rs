//! Stage 1: open requests → events → per-target deliveries, enqueued in one transaction with
//! the dedupe check and the request's settlement.

use std::collections::HashMap;

use bytes::Bytes;
use wagate_journal::Request;
use wagate_journal::events::{Exploded, NewDelivery};
use wagate_model::{Event, Kind, Provider, RawRequest};

use crate::config::{Mode, TargetConfig};

/// Turns one stored request into its deliveries for `targets`, in event order.
///
/// `events` mode: one delivery per event that passes the target's filters. `raw` mode: one
/// delivery of the whole request when any of its events passes, ordered by the first such
/// event's conversation and carrying all their dedupe keys. `invalid` events (and bodies that
/// are not JSON) are stored dead-lettered with their reason for every target of the source.
pub fn explode_request(
    seq: u64,
    req: &Request,
    providers: &HashMap<String, Provider>,
    targets: &[TargetConfig],
) -> Exploded {
    let events = events_of(req, providers);
    let mut deliveries = Vec::new();
    for t in targets.iter().filter(|t| t.takes_source(&req.source)) {
        match t.mode {
            Mode::Events => {
                for e in &events {
                    let dead = dead_reason(e, req);
                    if dead.is_none() && !t.takes(e) {
                        continue;
                    }
                    deliveries.push(NewDelivery {
                        target: t.name.clone(),
                        conversation_key: e.conversation_key.clone(),
                        dedupe_keys: vec![e.dedupe_key.clone()],
                        event_id: e.id.clone(),
                        kind: e.kind.as_str().into(),
                        body: Bytes::from(e.to_json()),
                        content_type: Some("application/json".into()),
                        signature: None,
                        dead_reason: dead,
                    });
                }
            }
            Mode::Raw => {
                let invalid = events.iter().find_map(|e| dead_reason(e, req));
                let taken: Vec<&Event<'_>> = events
                    .iter()
                    .filter(|e| invalid.is_some() || t.takes(e))
                    .collect();
                let Some(first) = taken.first() else {
                    continue;
                };
                deliveries.push(NewDelivery {
                    target: t.name.clone(),
                    conversation_key: first.conversation_key.clone(),
                    dedupe_keys: taken.iter().map(|e| e.dedupe_key.clone()).collect(),
                    event_id: req.id.clone(),
                    kind: "raw".into(),
                    body: req.body.clone(),
                    content_type: req.content_type.clone(),
                    signature: req.signature.clone(),
                    dead_reason: invalid,
                });
            }
        }
    }
    Exploded {
        seq,
        received_at: req.received_at,
        deliveries,
    }
}

/// The events of a stored request; its source's provider, or detected from the body.
pub fn events_of<'a>(req: &'a Request, providers: &HashMap<String, Provider>) -> Vec<Event<'a>> {
    let provider = providers
        .get(&req.source)
        .copied()
        .unwrap_or_else(|| Provider::detect(&req.body));
    wagate_model::explode(&RawRequest {
        id: &req.id,
        source: &req.source,
        provider,
        received_at: req.received_at,
        body: &req.body,
    })
}

fn dead_reason(e: &Event<'_>, req: &Request) -> Option<String> {
    if e.kind == Kind::Invalid || !req.valid_json {
        Some(format!(
            "invalid: {}",
            e.reason.as_deref().unwrap_or("body is not valid JSON")
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn target(name: &str, mode: Mode) -> TargetConfig {
        TargetConfig {
            name: name.into(),
            url: "http://127.0.0.1:1/".into(),
            mode,
            secret: None,
            timeout: std::time::Duration::from_secs(1),
            concurrency: 1,
            rate: None,
            sources: vec![],
            kinds: vec![],
            fields: vec![],
            types: vec![],
        }
    }

    fn request(body: &[u8], valid_json: bool) -> Request {
        Request {
            id: "r1".into(),
            source: "meta".into(),
            received_at: SystemTime::UNIX_EPOCH,
            body: Bytes::copy_from_slice(body),
            content_type: Some("application/json".into()),
            signature: Some("x-hub-signature-256: sha256=00".into()),
            peer: None,
            valid_json,
        }
    }

    const TWO: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"101"},"messages":[{"from":"155","id":"wamid.A","timestamp":"1767225600","type":"text","text":{"body":"a"}},{"from":"166","id":"wamid.B","timestamp":"1767225601","type":"image","image":{"id":"9"}}]}}]}]}"#;

    #[test]
    fn events_raw_filters_and_invalid() {
        let providers = HashMap::from([("meta".to_string(), Provider::Meta)]);
        let mut images = target("img", Mode::Events);
        images.types = vec!["image".into()];
        let targets = [target("ev", Mode::Events), target("raw", Mode::Raw), images];
        let ex = explode_request(7, &request(TWO, true), &providers, &targets);
        let by = |t: &str| -> Vec<&NewDelivery> {
            ex.deliveries.iter().filter(|d| d.target == t).collect()
        };
        assert_eq!(by("ev").len(), 2);
        let raw = by("raw");
        assert_eq!(raw.len(), 1);
        assert_eq!(&raw[0].body[..], TWO);
        assert_eq!(raw[0].dedupe_keys, ["msg:wamid.A", "msg:wamid.B"]);
        assert_eq!(raw[0].conversation_key, "101:155");
        let img = by("img");
        assert_eq!(img.len(), 1);
        assert_eq!(img[0].dedupe_keys, ["msg:wamid.B"]);

        let bad = explode_request(8, &request(b"{not json", false), &providers, &targets);
        assert_eq!(bad.deliveries.len(), 3);
        assert!(bad.deliveries.iter().all(|d| {
            d.dead_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("invalid"))
        }));
    }
}
