//! WasenderAPI bodies: `{event, timestamp?, sessionId?, data}` (WasenderAPI webhook docs,
//! summarised in `docs/events.md`).
//!
//! One event per message when `data.messages` (object or array) or `data` (array of keyed
//! items) holds messages; otherwise one event per POST, with the message key read from
//! `data.key`, `data.message.key` or `data.keys[]` when present.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{Event, Kind};
use crate::explode::{Out, ts};
use crate::keys::{self, Part};
use crate::lenient::{Text, elements, first_key, is_object, parse, parse_or_default};
use crate::meta::truncate;

#[derive(Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    event: Text<'a>,
    #[serde(borrow, default)]
    timestamp: Text<'a>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Data<'a> {
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    keys: Option<&'a RawValue>,
}

/// A Baileys message (or update/receipt/reaction item) as WasenderAPI forwards it.
#[derive(Deserialize, Default)]
struct Item<'a> {
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "pushName")]
    push_name: Text<'a>,
    #[serde(borrow, default, rename = "messageTimestamp")]
    message_timestamp: Text<'a>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reaction: Option<&'a RawValue>,
    #[serde(borrow, default)]
    update: Option<&'a RawValue>,
    #[serde(borrow, default)]
    receipt: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Key<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default, rename = "remoteJid")]
    remote_jid: Text<'a>,
    #[serde(borrow, default)]
    participant: Text<'a>,
    #[serde(borrow, default, rename = "cleanedSenderPn")]
    cleaned_sender_pn: Text<'a>,
    #[serde(borrow, default, rename = "senderPn")]
    sender_pn: Text<'a>,
    #[serde(borrow, default, rename = "cleanedParticipantPn")]
    cleaned_participant_pn: Text<'a>,
    #[serde(borrow, default, rename = "participantPn")]
    participant_pn: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Update<'a> {
    #[serde(borrow, default)]
    status: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Receipt<'a> {
    #[serde(borrow, default, rename = "userJid")]
    user_jid: Text<'a>,
    #[serde(borrow, default, rename = "receiptTimestamp")]
    receipt_timestamp: Text<'a>,
    #[serde(borrow, default, rename = "readTimestamp")]
    read_timestamp: Text<'a>,
    #[serde(borrow, default, rename = "playedTimestamp")]
    played_timestamp: Text<'a>,
}

/// Explodes a WasenderAPI body.
pub(crate) fn explode<'a>(out: &mut Out<'_, 'a>, root: &'a RawValue) {
    let Some(env) = parse::<Envelope<'a>>(root).filter(|_| is_object(root)) else {
        out.unknown(
            Some(root),
            "not a WasenderAPI envelope (a JSON object with `event` and `data`)".into(),
        );
        return;
    };
    let Some(event) = env.event.0.clone() else {
        out.unknown(
            Some(root),
            "WasenderAPI body without an `event` name".into(),
        );
        return;
    };
    let data_raw = env.data;
    let data: Data<'a> = data_raw
        .filter(|d| is_object(d))
        .and_then(parse)
        .unwrap_or_default();

    // Per-message events.
    let items: Vec<&'a RawValue> = if data.messages.is_some() {
        elements(data.messages)
    } else if data_raw.is_some_and(|d| d.get().starts_with('[')) {
        let all = elements(data_raw);
        let keyed = all
            .iter()
            .all(|i| parse::<Item<'a>>(i).is_some_and(|i| i.key.is_some()));
        if keyed { all } else { Vec::new() }
    } else {
        Vec::new()
    };
    if !items.is_empty() {
        for raw in items {
            let item: Item<'a> = parse(raw).filter(|_| is_object(raw)).unwrap_or_default();
            let e = item_event(out, &env, &event, item, raw);
            out.push(e);
        }
        return;
    }

    // One event per POST.
    if let Some(key) = data.key {
        let item = Item {
            key: Some(key),
            ..data_raw.and_then(parse).unwrap_or_default()
        };
        let mut e = item_event(out, &env, &event, item, root);
        e.payload = Some(Cow::Borrowed(root));
        out.push(e);
    } else if let Some(msg) = data.message.filter(|m| is_object(m)) {
        // `message-receipt.update`: `data.message{key, receipt}`.
        let item: Item<'a> = parse(msg).unwrap_or_default();
        let mut e = item_event(out, &env, &event, item, root);
        e.payload = Some(Cow::Borrowed(root));
        out.push(e);
    } else if data.keys.is_some() {
        // `messages.delete`: `data.keys[]` names the deleted messages.
        let keys: Vec<Key<'a>> = elements(data.keys).into_iter().filter_map(parse).collect();
        let ids: Vec<&str> = keys.iter().filter_map(|k| k.id.get()).collect();
        let mut e = post_event(out, &env, &event, root);
        if !ids.is_empty() {
            e.dedupe_key = format!("wasender:{event}:{}", ids.join(","));
        }
        if let [k] = keys.as_slice() {
            e.message_id = k.id.0.clone();
            fill_chat(&mut e, k, out.req.source);
        }
        out.push(e);
    } else {
        let e = post_event(out, &env, &event, root);
        out.push(e);
    }
}

/// Events about message state, not new messages.
fn kind_of(event: &str) -> Kind {
    if event == "messages.update" || event.contains("receipt") {
        Kind::Status
    } else if event.starts_with("message") {
        Kind::Message
    } else {
        Kind::Ops
    }
}

/// An event per POST whose dedupe key hashes the body (no message id to use).
fn post_event<'a>(
    out: &Out<'_, 'a>,
    env: &Envelope<'a>,
    event: &Cow<'a, str>,
    root: &'a RawValue,
) -> Event<'a> {
    let source = out.req.source;
    let dedupe = format!(
        "ops:{}",
        keys::hash(&[
            Part::Text(source),
            Part::Text(event),
            Part::Json(root.get().as_bytes())
        ])
    );
    let mut e = out.event(kind_of(event), dedupe, source.to_owned());
    e.field = Some(event.clone());
    e.type_ = Some(event.clone());
    e.timestamp = ts(&env.timestamp);
    e.payload = Some(Cow::Borrowed(root));
    e
}

fn item_event<'a>(
    out: &Out<'_, 'a>,
    env: &Envelope<'a>,
    event: &Cow<'a, str>,
    item: Item<'a>,
    raw: &'a RawValue,
) -> Event<'a> {
    let source = out.req.source;
    let key: Key<'a> = parse_or_default(item.key);
    let kind = kind_of(event);
    let type_: Option<Cow<'a, str>> = match kind {
        Kind::Status if item.receipt.is_some() => {
            let r: Receipt<'a> = parse_or_default(item.receipt);
            Some(Cow::Borrowed(receipt_type(&r)))
        }
        Kind::Status => {
            let u: Update<'a> = parse_or_default(item.update);
            u.status.take().map(|s| match status_name(&s) {
                Some(name) => Cow::Borrowed(name),
                None => s,
            })
        }
        _ if item.reaction.is_some() => Some(Cow::Borrowed("reaction")),
        _ => item.message.and_then(message_type),
    };
    let id = key.id.get().unwrap_or_default();
    let dedupe = if id.is_empty() {
        format!(
            "wasender:{event}:{}",
            keys::hash(&[Part::Text(source), Part::Json(raw.get().as_bytes())])
        )
    } else if kind == Kind::Status {
        // Several updates of one message (delivered, read; each group member's receipt).
        let receipt: Receipt<'a> = parse_or_default(item.receipt);
        match receipt.user_jid.get() {
            Some(who) => format!(
                "wasender:{event}:{id}:{who}:{}",
                type_.as_deref().unwrap_or_default()
            ),
            None => format!(
                "wasender:{event}:{id}:{}",
                type_.as_deref().unwrap_or_default()
            ),
        }
    } else {
        format!("wasender:{event}:{id}")
    };
    let mut e = out.event(kind, dedupe, source.to_owned());
    e.field = Some(event.clone());
    e.type_ = type_.or_else(|| Some(event.clone()));
    e.timestamp = ts(&item.message_timestamp).or_else(|| ts(&env.timestamp));
    e.message_id = key.id.0.clone();
    e.name = item.push_name.take();
    fill_chat(&mut e, &key, source);
    e.payload = Some(Cow::Borrowed(raw));
    e
}

/// Sets `group_id`/`wa_id` from a message key and the conversation key `<source>:<remoteJid>`.
fn fill_chat<'a>(e: &mut Event<'a>, key: &Key<'a>, source: &str) {
    let jid = key.remote_jid.get();
    if let Some(jid) = jid {
        if jid.ends_with("@g.us") {
            e.group_id = key.remote_jid.0.clone();
            e.wa_id = key
                .cleaned_participant_pn
                .0
                .clone()
                .or_else(|| phone_of(&key.participant_pn))
                .or_else(|| phone_of(&key.participant));
        } else {
            e.wa_id = phone_of(&key.remote_jid)
                .or_else(|| key.cleaned_sender_pn.0.clone())
                .or_else(|| phone_of(&key.sender_pn));
        }
        e.conversation_key = format!("{source}:{jid}");
    }
}

/// The digits of a `<phone>@s.whatsapp.net` jid (`@lid` and group jids are not phones).
fn phone_of<'a>(jid: &Text<'a>) -> Option<Cow<'a, str>> {
    let j = jid.0.as_ref()?;
    let phone = j.strip_suffix("@s.whatsapp.net")?;
    let phone = phone.split(':').next().unwrap_or(phone); // device suffix `123:4@…`
    Some(match j {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..phone.len()]),
        Cow::Owned(_) => Cow::Owned(phone.to_owned()),
    })
}

/// Baileys `message` content kind → a Meta-like type name (`conversation` → `text`,
/// `imageMessage` → `image`, unknown `fooMessage` → `foo`).
pub(crate) fn message_type(message: &RawValue) -> Option<Cow<'_, str>> {
    let k = first_key(
        message,
        &["messageContextInfo", "senderKeyDistributionMessage"],
    )?;
    let t = match k.as_ref() {
        "conversation" | "extendedTextMessage" => "text",
        "imageMessage" => "image",
        "videoMessage" | "ptvMessage" => "video",
        "audioMessage" => "audio",
        "documentMessage" | "documentWithCaptionMessage" => "document",
        "stickerMessage" => "sticker",
        "locationMessage" | "liveLocationMessage" => "location",
        "contactMessage" | "contactsArrayMessage" => "contacts",
        "reactionMessage" => "reaction",
        "pollCreationMessage" | "pollCreationMessageV2" | "pollCreationMessageV3" => "poll",
        "protocolMessage" => "protocol",
        other => {
            return Some(Cow::Owned(
                truncate(other.strip_suffix("Message").unwrap_or(other)).to_owned(),
            ));
        }
    };
    Some(Cow::Borrowed(t))
}

/// WasenderAPI `messages.update` status codes (0 ERROR … 5 PLAYED).
fn status_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "0" => "error",
        "1" => "pending",
        "2" => "sent",
        "3" => "delivered",
        "4" => "read",
        "5" => "played",
        _ => return None,
    })
}

/// The furthest state a Baileys receipt reports.
fn receipt_type(r: &Receipt<'_>) -> &'static str {
    if r.played_timestamp.get().is_some() {
        "played"
    } else if r.read_timestamp.get().is_some() {
        "read"
    } else if r.receipt_timestamp.get().is_some() {
        "delivered"
    } else {
        "receipt"
    }
}
