//! The normalized event and the raw request it is exploded from.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;

/// Version tag written in every event's `schema` field (see `docs/event.schema.json`).
/// Bump it on any incompatible change of the event shape.
pub const SCHEMA: &str = "wagate.event.v1";

/// Which webhook dialect a source speaks; decides how a body is exploded.
///
/// Names match the `provider` key of a `[[sources]]` entry in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Meta WhatsApp Cloud API (`object: whatsapp_business_account`).
    Meta,
    /// WasenderAPI (`{event, timestamp, sessionId?, data}`).
    Wasender,
    /// Any other bridge or generic HMAC source (WAHA, Evolution API, WPPConnect, ...): one event
    /// per POST.
    Hmac,
}

impl Provider {
    /// The lowercase name used in configuration and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Meta => "meta",
            Provider::Wasender => "wasender",
            Provider::Hmac => "hmac",
        }
    }

    /// Guesses the provider of a body: `object: whatsapp_business_account` → Meta; an object with
    /// `event` and `data` (and none of Evolution API's `instance`/`apikey`) → WasenderAPI; anything
    /// else → [`Provider::Hmac`]. Used by `wagate inspect` when `--provider` is not given.
    pub fn detect(body: &[u8]) -> Provider {
        crate::explode::detect_provider(body)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    /// Accepts `meta`, `wasender`, `hmac`, and `other` as an alias of `hmac`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "meta" => Ok(Provider::Meta),
            "wasender" => Ok(Provider::Wasender),
            "hmac" | "other" => Ok(Provider::Hmac),
            other => Err(format!(
                "unknown provider `{other}` (expected meta, wasender, hmac or other)"
            )),
        }
    }
}

/// One stored webhook request, as the journal hands it over. Nothing is copied: the body stays
/// borrowed and events point into it.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// Request id assigned at ingest; event ids are `<id>:<position>`.
    pub id: &'a str,
    /// Name of the configured source the request arrived on.
    pub source: &'a str,
    /// Dialect of that source.
    pub provider: Provider,
    /// When ingest received the request.
    pub received_at: SystemTime,
    /// The raw POST body, byte-exact.
    pub body: &'a [u8],
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An incoming user message (Meta `messages[]`, WasenderAPI/bridge message events).
    Message,
    /// A delivery status of a message the business sent (`statuses[]`, WasenderAPI updates).
    Status,
    /// A value-level error (Meta `value.errors[]`).
    Error,
    /// A message the business sent from the WhatsApp Business app (`message_echoes[]`).
    Echo,
    /// Any other notification: templates, account, quality, flows, groups, sessions, ...
    Ops,
    /// Valid JSON that is not a known envelope (or an element that cannot be read).
    Unknown,
    /// A body that is not valid JSON.
    Invalid,
}

impl Kind {
    /// The lowercase name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Status => "status",
            Kind::Error => "error",
            Kind::Echo => "echo",
            Kind::Ops => "ops",
            Kind::Unknown => "unknown",
            Kind::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One normalized event: a single update of a webhook request.
///
/// Serialized as one JSON object (one NDJSON line); absent optional fields are omitted. Text taken
/// from the body borrows from it when it needs no unescaping; `payload` and `contact` always
/// borrow the exact bytes that were received. Field meanings and key rules: `docs/events.md`;
/// JSON Schema: `docs/event.schema.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// `<request id>:<position>`; position counts events of the request from 0 in body order.
    pub id: String,
    /// Source name.
    pub source: Cow<'a, str>,
    /// Source dialect.
    pub provider: Provider,
    /// What the event is about.
    pub kind: Kind,
    /// Meta change `field` (`messages`, `account_update`, ...) or the bridge's event name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Cow<'a, str>>,
    /// Message type, status value, error code or ops event name.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<Cow<'a, str>>,
    /// WhatsApp Business Account id (`entry[].id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<Cow<'a, str>>,
    /// Business phone number id (`value.metadata.phone_number_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<Cow<'a, str>>,
    /// Business display number, digits (`value.metadata.display_phone_number`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<Cow<'a, str>>,
    /// The user's phone number, digits without `+`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<Cow<'a, str>>,
    /// The user's business-scoped user id (BSUID, e.g. `US.1000000000000001`), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Cow<'a, str>>,
    /// The user's WhatsApp username, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<Cow<'a, str>>,
    /// The user's profile name, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// Group id for group messages and statuses (Meta group id or `…@g.us` jid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Cow<'a, str>>,
    /// The message id (`wamid.…` for Meta, the key id for bridges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Cow<'a, str>>,
    /// When the update happened, RFC 3339 UTC (from unix seconds or milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// When wagate received the request, RFC 3339 UTC.
    pub received_at: String,
    /// Idempotency key; equal for the same update delivered twice (rules in `docs/events.md`).
    pub dedupe_key: String,
    /// Ordering key: events with the same key belong to one conversation.
    pub conversation_key: String,
    /// Why the event is `invalid`/`unknown`, or what was odd about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'static, str>>,
    /// The `contacts[]` element of the change that describes this event's user, as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Cow<'a, RawValue>>,
    /// The element's own JSON exactly as received (a message, a status, a change `value`, or the
    /// whole body for one-event-per-POST providers); absent for `invalid` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Cow<'a, RawValue>>,
}

impl Event<'_> {
    /// The event as one JSON line (no trailing newline); see [`Event::write_ndjson`].
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(512 + self.payload.as_ref().map_or(0, |p| p.get().len()));
        self.write_json(&mut out);
        // The writer only emits UTF-8 (the raw values were validated as UTF-8 JSON).
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the event and a `\n` to `out`: the NDJSON form, without an intermediate `String`.
    ///
    /// `payload` and `contact` are copied byte for byte, except that line breaks between their
    /// JSON tokens (pretty-printed bodies) are written as spaces so the event stays on one line.
    /// A JSON string cannot contain a raw line break, so no content changes.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        self.write_json(out);
        out.push(b'\n');
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if serde_json::to_writer(&mut *out, self).is_err() {
            // Serializing strings and validated raw JSON cannot fail; never emit half a line.
            out.truncate(start);
            return;
        }
        for b in &mut out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }

    /// Detaches the event from the request body (copies borrowed text and payload).
    pub fn into_owned(self) -> Event<'static> {
        fn own(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(|c| Cow::Owned(c.into_owned()))
        }
        fn own_raw(c: Option<Cow<'_, RawValue>>) -> Option<Cow<'static, RawValue>> {
            c.map(|c| Cow::Owned(c.into_owned()))
        }
        Event {
            schema: self.schema,
            id: self.id,
            source: Cow::Owned(self.source.into_owned()),
            provider: self.provider,
            kind: self.kind,
            field: own(self.field),
            type_: own(self.type_),
            waba_id: own(self.waba_id),
            phone_number_id: own(self.phone_number_id),
            display_phone_number: own(self.display_phone_number),
            wa_id: own(self.wa_id),
            user_id: own(self.user_id),
            username: own(self.username),
            name: own(self.name),
            group_id: own(self.group_id),
            message_id: own(self.message_id),
            timestamp: self.timestamp,
            received_at: self.received_at,
            dedupe_key: self.dedupe_key,
            conversation_key: self.conversation_key,
            reason: self.reason,
            contact: own_raw(self.contact),
            payload: own_raw(self.payload),
        }
    }
}
