//! `explode`: one stored request → its events. Provider-specific readers live in
//! [`crate::meta`], [`crate::wasender`] and [`crate::bridge`]; this module holds the entry
//! point, the shared event builder and the `invalid`/`unknown` fallbacks.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{Event, Kind, Provider, RawRequest, SCHEMA};
use crate::keys::{self, Part};
use crate::lenient::{self, Text};
use crate::{bridge, clock, meta, wasender};

/// Explodes one stored request into its normalized events, in body order.
///
/// Never panics and never fails: a body that is not JSON gives one `invalid` event, JSON that is
/// not the provider's envelope gives one `unknown` event, each with a `reason`. The result is
/// never empty. Provider rules: `docs/events.md`.
pub fn explode<'a>(req: &RawRequest<'a>) -> Vec<Event<'a>> {
    let mut out = Out::new(req);
    match parse_json(req.body) {
        Err(reason) => {
            let dedupe = format!(
                "invalid:{}",
                keys::hash(&[Part::Text(req.source), Part::Json(req.body)])
            );
            let mut e = out.event(Kind::Invalid, dedupe, req.source.to_owned());
            e.reason = Some(Cow::Owned(reason));
            out.push(e);
        }
        Ok(root) => match req.provider {
            Provider::Meta => meta::explode(&mut out, root),
            Provider::Wasender => wasender::explode(&mut out, root),
            Provider::Hmac => bridge::explode(&mut out, root),
        },
    }
    if out.events.is_empty() {
        // e.g. `{"object":"whatsapp_business_account","entry":[]}`: keep one trace of the request.
        let root = parse_json(req.body).ok();
        out.unknown(root, "no updates in the body".into());
    }
    out.events
}

/// Validates the body as one JSON value and returns it, borrowed.
fn parse_json(body: &[u8]) -> Result<&RawValue, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("empty body".into());
    }
    // serde_json syntax errors name a line and column, never body content.
    serde_json::from_slice::<&RawValue>(body).map_err(|e| format!("body is not valid JSON: {e}"))
}

/// Top-level keys used to recognise an envelope.
#[derive(Deserialize, Default)]
struct Sniff<'a> {
    #[serde(borrow, default)]
    object: Text<'a>,
    #[serde(borrow, default)]
    event: Text<'a>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instance: Option<&'a RawValue>,
    #[serde(borrow, default)]
    apikey: Option<&'a RawValue>,
}

/// See [`Provider::detect`].
pub(crate) fn detect_provider(body: &[u8]) -> Provider {
    let Ok(root) = serde_json::from_slice::<&RawValue>(body) else {
        return Provider::Hmac;
    };
    let Some(s) = lenient::parse::<Sniff<'_>>(root) else {
        return Provider::Hmac;
    };
    if s.object.get() == Some(meta::OBJECT) {
        Provider::Meta
    } else if s.event.get().is_some()
        && s.data.is_some()
        && s.instance.is_none()
        && s.apikey.is_none()
    {
        Provider::Wasender
    } else {
        Provider::Hmac
    }
}

/// Collects the events of one request and stamps the request-level fields on each.
pub(crate) struct Out<'r, 'a> {
    pub req: &'r RawRequest<'a>,
    received_at: String,
    pub events: Vec<Event<'a>>,
}

impl<'r, 'a> Out<'r, 'a> {
    fn new(req: &'r RawRequest<'a>) -> Self {
        Out {
            req,
            received_at: clock::from_system(req.received_at),
            events: Vec::new(),
        }
    }

    /// A fresh event with the request-level fields set and everything else empty. Its id is
    /// assigned by [`Out::push`].
    pub fn event(&self, kind: Kind, dedupe_key: String, conversation_key: String) -> Event<'a> {
        Event {
            schema: SCHEMA,
            id: String::new(),
            source: Cow::Borrowed(self.req.source),
            provider: self.req.provider,
            kind,
            field: None,
            type_: None,
            waba_id: None,
            phone_number_id: None,
            display_phone_number: None,
            wa_id: None,
            user_id: None,
            username: None,
            name: None,
            group_id: None,
            message_id: None,
            timestamp: None,
            received_at: self.received_at.clone(),
            dedupe_key,
            conversation_key,
            reason: None,
            contact: None,
            payload: None,
        }
    }

    /// Appends `e`, giving it the id `<request id>:<position>`.
    pub fn push(&mut self, mut e: Event<'a>) {
        e.id = format!("{}:{}", self.req.id, self.events.len());
        self.events.push(e);
    }

    /// Appends an `unknown` event carrying `payload` (if any) and `reason`. Its dedupe key is a
    /// hash of the source and the payload, so a retried copy gets the same key.
    pub fn unknown(&mut self, payload: Option<&'a RawValue>, reason: String) {
        let bytes = payload.map(|p| p.get().as_bytes()).unwrap_or_default();
        let dedupe = format!(
            "unknown:{}",
            keys::hash(&[
                Part::Text(self.req.source),
                Part::Text(&reason),
                Part::Json(bytes)
            ])
        );
        let mut e = self.event(Kind::Unknown, dedupe, self.req.source.to_owned());
        e.reason = Some(Cow::Owned(reason));
        e.payload = payload.map(Cow::Borrowed);
        self.push(e);
    }
}

/// RFC 3339 form of a unix-time text field.
pub(crate) fn ts(t: &Text<'_>) -> Option<String> {
    t.get().and_then(clock::from_unix_text)
}
