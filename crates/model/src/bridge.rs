//! Other bridges and generic HMAC sources (WAHA, Evolution API, WPPConnect, ...): one event
//! per POST. Shapes (summarised in `docs/events.md`):
//! - Evolution API: `{event, instance, data{key{id, remoteJid}, pushName, messageTimestamp}}`;
//! - WAHA: `{id: "evt_…", event, timestamp(ms), payload{id, from, timestamp, …}}`;
//! - WPPConnect: the message itself plus `{event, session}` (`id`, `from`, `t`, `notifyName`).
//!
//! The message id, chat and sender are read from whichever of these places exists.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Kind;
use crate::explode::{Out, ts};
use crate::keys::{self, Part};
use crate::lenient::{Text, is_object, parse, parse_or_default};
use crate::wasender::message_type;

/// Fields looked up at the top level, in `data` and in `payload`.
#[derive(Deserialize, Default)]
struct Node<'a> {
    #[serde(borrow, default)]
    event: Text<'a>,
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    from: Text<'a>,
    #[serde(borrow, default, rename = "chatId")]
    chat_id: Text<'a>,
    #[serde(borrow, default, rename = "pushName")]
    push_name: Text<'a>,
    #[serde(borrow, default, rename = "notifyName")]
    notify_name: Text<'a>,
    #[serde(borrow, default, rename = "messageTimestamp")]
    message_timestamp: Text<'a>,
    #[serde(borrow, default)]
    timestamp: Text<'a>,
    #[serde(borrow, default)]
    t: Text<'a>,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Key<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default, rename = "remoteJid")]
    remote_jid: Text<'a>,
}

/// Explodes a body of any other provider into one event.
pub(crate) fn explode<'a>(out: &mut Out<'_, 'a>, root: &'a RawValue) {
    let Some(top) = parse::<Node<'a>>(root).filter(|_| is_object(root)) else {
        out.unknown(Some(root), "body is not a JSON object".into());
        return;
    };
    let data: Node<'a> = top
        .data
        .filter(|d| is_object(d))
        .and_then(parse)
        .unwrap_or_default();
    let payload: Node<'a> = top
        .payload
        .filter(|d| is_object(d))
        .and_then(parse)
        .unwrap_or_default();
    let key: Key<'a> = parse_or_default(data.key.or(top.key));

    // Message id: a Baileys key (Evolution), WAHA `payload.id`, or the WPPConnect message `id`
    // (a top-level `id` is only a message id when there is no `payload`: WAHA's is the event id).
    let message_id = key
        .id
        .0
        .clone()
        .or_else(|| payload.id.0.clone())
        .or_else(|| top.payload.is_none().then(|| top.id.0.clone()).flatten());
    let chat = key
        .remote_jid
        .0
        .clone()
        .or_else(|| payload.chat_id.0.clone())
        .or_else(|| payload.from.0.clone())
        .or_else(|| top.chat_id.0.clone())
        .or_else(|| top.from.0.clone());
    let event = top.event.0.clone();
    let is_message = event
        .as_deref()
        .is_some_and(|e| e.contains("message") || e.contains("Message"))
        && message_id.is_some();
    let source = out.req.source;
    let ev = event.as_deref().unwrap_or_default();
    let dedupe = match &message_id {
        Some(id) => format!("{}:{ev}:{id}", out.req.provider),
        None => format!(
            "ops:{}",
            keys::hash(&[
                Part::Text(source),
                Part::Text(ev),
                Part::Json(root.get().as_bytes())
            ])
        ),
    };
    let conversation = match &chat {
        Some(c) => format!("{source}:{c}"),
        None => source.to_owned(),
    };
    let mut e = out.event(
        if is_message { Kind::Message } else { Kind::Ops },
        dedupe,
        conversation,
    );
    e.field = event.clone();
    // Baileys-based bridges (Evolution API) carry the message content kind.
    let content = if is_message {
        data.message.filter(|m| is_object(m))
    } else {
        None
    };
    e.type_ = content.and_then(message_type).or(event);
    e.message_id = message_id;
    e.name = data
        .push_name
        .take()
        .or_else(|| payload.notify_name.0.clone())
        .or_else(|| top.push_name.0.clone())
        .or_else(|| top.notify_name.0.clone());
    e.timestamp = ts(&data.message_timestamp)
        .or_else(|| ts(&payload.timestamp))
        .or_else(|| ts(&top.t))
        .or_else(|| ts(&top.timestamp));
    if let Some(c) = &chat {
        if c.ends_with("@g.us") {
            e.group_id = chat.clone();
        } else if let Some(p) = c
            .strip_suffix("@s.whatsapp.net")
            .or_else(|| c.strip_suffix("@c.us"))
        {
            e.wa_id = Some(Cow::Owned(p.to_owned()));
        }
    }
    e.payload = Some(Cow::Borrowed(root));
    out.push(e);
}
