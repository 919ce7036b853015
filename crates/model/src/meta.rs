//! Meta WhatsApp Cloud API bodies (`object: whatsapp_business_account`).
//!
//! Layout (reference: Meta "Webhooks" payload docs, summarised in `docs/events.md`):
//! `entry[]{id, time?, changes[]{field, value}}`. A `messages` change gives one event per
//! `value.messages[]`, `value.statuses[]` and `value.errors[]` element, `smb_message_echoes` one
//! per `value.message_echoes[]` element, every other field one event per change.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{Event, Kind};
use crate::explode::{Out, ts};
use crate::keys::{self, Part};
use crate::lenient::{Text, elements, is_object, parse, parse_or_default};

/// The `object` value of a WhatsApp Business Account webhook.
pub const OBJECT: &str = "whatsapp_business_account";

#[derive(Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    object: Text<'a>,
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Entry<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    time: Text<'a>,
    #[serde(borrow, default)]
    changes: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Change<'a> {
    #[serde(borrow, default)]
    field: Text<'a>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// The parts of a change `value` that events are built from; everything else stays in the
/// payload.
#[derive(Deserialize, Default)]
struct Value<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    statuses: Option<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message_echoes: Option<&'a RawValue>,
    // ops fields
    #[serde(borrow, default)]
    event: Text<'a>,
    #[serde(borrow, default)]
    decision: Text<'a>,
    #[serde(borrow, default)]
    display_phone_number: Text<'a>,
    #[serde(borrow, default)]
    groups: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_preferences: Option<&'a RawValue>,
    #[serde(borrow, default)]
    state_sync: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    display_phone_number: Text<'a>,
    #[serde(borrow, default)]
    phone_number_id: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Contact<'a> {
    #[serde(borrow, default)]
    wa_id: Text<'a>,
    #[serde(borrow, default)]
    user_id: Text<'a>,
    #[serde(borrow, default)]
    profile: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Profile<'a> {
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    username: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    from: Text<'a>,
    #[serde(borrow, default)]
    from_user_id: Text<'a>,
    #[serde(borrow, default)]
    timestamp: Text<'a>,
    #[serde(borrow, default, rename = "type")]
    type_: Text<'a>,
    #[serde(borrow, default)]
    group_id: Text<'a>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct System<'a> {
    #[serde(borrow, default)]
    wa_id: Text<'a>,
    #[serde(borrow, default)]
    user_id: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Status<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    status: Text<'a>,
    #[serde(borrow, default)]
    timestamp: Text<'a>,
    #[serde(borrow, default)]
    recipient_id: Text<'a>,
    #[serde(borrow, default)]
    recipient_user_id: Text<'a>,
    #[serde(borrow, default)]
    recipient_type: Text<'a>,
    #[serde(borrow, default)]
    recipient_participant_id: Text<'a>,
}

#[derive(Deserialize, Default)]
struct Echo<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    to: Text<'a>,
    #[serde(borrow, default)]
    to_user_id: Text<'a>,
    #[serde(borrow, default)]
    timestamp: Text<'a>,
    #[serde(borrow, default, rename = "type")]
    type_: Text<'a>,
    #[serde(borrow, default)]
    group_id: Text<'a>,
}

#[derive(Deserialize, Default)]
struct ErrorObj<'a> {
    #[serde(borrow, default)]
    code: Text<'a>,
}

/// First-element fields that name or place an ops event (`groups[]`, `user_preferences[]`,
/// `state_sync[]`).
#[derive(Deserialize, Default)]
struct OpsItem<'a> {
    #[serde(borrow, default, rename = "type")]
    type_: Text<'a>,
    #[serde(borrow, default)]
    value: Text<'a>,
    #[serde(borrow, default)]
    timestamp: Text<'a>,
    #[serde(borrow, default)]
    group_id: Text<'a>,
    #[serde(borrow, default)]
    wa_id: Text<'a>,
    #[serde(borrow, default)]
    user_id: Text<'a>,
}

/// What every event of one change shares.
struct ChangeCtx<'a> {
    waba_id: Option<Cow<'a, str>>,
    entry_time: Text<'a>,
    field: Option<Cow<'a, str>>,
    phone_number_id: Option<Cow<'a, str>>,
    display_phone_number: Option<Cow<'a, str>>,
    contacts: Vec<(Contact<'a>, &'a RawValue)>,
}

impl<'a> ChangeCtx<'a> {
    /// `<phone_number_id>`, else `waba:<waba id>`, else the source name.
    fn business(&self, source: &str) -> String {
        match (&self.phone_number_id, &self.waba_id) {
            (Some(p), _) => p.to_string(),
            (None, Some(w)) => format!("waba:{w}"),
            (None, None) => source.to_owned(),
        }
    }

    fn ops_conversation(&self, source: &str) -> String {
        match &self.waba_id {
            Some(w) => format!("waba:{w}"),
            None => source.to_owned(),
        }
    }

    /// Hash key for updates without an id: `(waba id, field, entry.time, value)`.
    fn hash(&self, value: &RawValue, extra: &str) -> String {
        keys::hash(&[
            Part::Text(self.waba_id.as_deref().unwrap_or_default()),
            Part::Text(self.field.as_deref().unwrap_or_default()),
            Part::Text(self.entry_time.get().unwrap_or_default()),
            Part::Json(value.get().as_bytes()),
            Part::Text(extra),
        ])
    }

    fn stamp(&self, e: &mut Event<'a>) {
        e.waba_id.clone_from(&self.waba_id);
        e.field.clone_from(&self.field);
        e.phone_number_id.clone_from(&self.phone_number_id);
        e.display_phone_number
            .clone_from(&self.display_phone_number);
    }

    /// Finds the `contacts[]` element of a user (by wa_id, then BSUID); a lone contact is taken
    /// when the event names no user at all.
    fn contact(
        &self,
        wa_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Option<&(Contact<'a>, &'a RawValue)> {
        let found = wa_id
            .and_then(|w| self.contacts.iter().find(|(c, _)| c.wa_id.get() == Some(w)))
            .or_else(|| {
                user_id.and_then(|u| {
                    self.contacts
                        .iter()
                        .find(|(c, _)| c.user_id.get() == Some(u))
                })
            });
        found.or_else(|| {
            (wa_id.is_none() && user_id.is_none() && self.contacts.len() == 1)
                .then(|| &self.contacts[0])
        })
    }

    /// Fills user fields from the matching contact and sets the conversation key.
    fn user(&self, e: &mut Event<'a>, source: &str) {
        if let Some((c, raw)) = self.contact(e.wa_id.as_deref(), e.user_id.as_deref()) {
            if e.wa_id.is_none() {
                e.wa_id = c.wa_id.0.clone();
            }
            if e.user_id.is_none() {
                e.user_id = c.user_id.0.clone();
            }
            let p: Profile<'a> = parse_or_default(c.profile);
            e.name = p.name.take();
            e.username = p.username.take();
            e.contact = Some(Cow::Borrowed(*raw));
        }
        e.conversation_key = keys::conversation(
            &self.business(source),
            e.group_id.as_deref(),
            e.wa_id.as_deref(),
            e.user_id.as_deref(),
        );
    }
}

/// Explodes a Meta body.
pub(crate) fn explode<'a>(out: &mut Out<'_, 'a>, root: &'a RawValue) {
    let Some(env) = parse::<Envelope<'a>>(root) else {
        out.unknown(
            Some(root),
            "body is not a JSON object with readable `object`/`entry`".into(),
        );
        return;
    };
    match env.object.get() {
        Some(OBJECT) => {}
        Some(other) => {
            let reason = format!("`object` is `{}`, expected `{OBJECT}`", truncate(other));
            out.unknown(Some(root), reason);
            return;
        }
        None => {
            out.unknown(Some(root), format!("no `object: {OBJECT}` envelope"));
            return;
        }
    }
    for (i, entry_raw) in elements(env.entry).into_iter().enumerate() {
        let Some(entry) = parse::<Entry<'a>>(entry_raw).filter(|_| is_object(entry_raw)) else {
            out.unknown(
                Some(entry_raw),
                format!("entry[{i}] is not a readable object"),
            );
            continue;
        };
        for (j, change_raw) in elements(entry.changes).into_iter().enumerate() {
            let Some(change) = parse::<Change<'a>>(change_raw).filter(|_| is_object(change_raw))
            else {
                out.unknown(
                    Some(change_raw),
                    format!("entry[{i}].changes[{j}] is not a readable object"),
                );
                continue;
            };
            explode_change(out, &entry, change, change_raw);
        }
    }
}

fn explode_change<'a>(
    out: &mut Out<'_, 'a>,
    entry: &Entry<'a>,
    change: Change<'a>,
    change_raw: &'a RawValue,
) {
    let value_raw = change.value.filter(|v| is_object(v));
    let value: Value<'a> = parse_or_default(value_raw);
    let meta: Metadata<'a> = parse_or_default(value.metadata);
    let contacts = elements(value.contacts)
        .into_iter()
        .filter_map(|raw| parse::<Contact<'a>>(raw).map(|c| (c, raw)))
        .collect();
    let ctx = ChangeCtx {
        waba_id: entry.id.0.clone(),
        entry_time: entry.time.clone(),
        field: change.field.0.clone(),
        phone_number_id: meta.phone_number_id.take(),
        display_phone_number: meta
            .display_phone_number
            .take()
            .or_else(|| value.display_phone_number.0.clone()),
        contacts,
    };
    let Some(value_raw) = value_raw else {
        let mut e = ops_event(
            out,
            &ctx,
            change_raw,
            &value,
            Some("change has no `value` object"),
        );
        e.kind = Kind::Unknown;
        out.push(e);
        return;
    };
    match ctx.field.as_deref() {
        Some("messages") => {
            let before = out.events.len();
            for (k, m) in elements(value.messages).into_iter().enumerate() {
                message(out, &ctx, m, k);
            }
            for (k, s) in elements(value.statuses).into_iter().enumerate() {
                status(out, &ctx, s, k);
            }
            for (k, err) in elements(value.errors).into_iter().enumerate() {
                value_error(out, &ctx, value_raw, err, k);
            }
            if out.events.len() == before {
                let e = ops_event(
                    out,
                    &ctx,
                    value_raw,
                    &value,
                    Some("`messages` change without messages, statuses or errors"),
                );
                out.push(e);
            }
        }
        Some("smb_message_echoes") => {
            let before = out.events.len();
            for (k, m) in elements(value.message_echoes).into_iter().enumerate() {
                echo(out, &ctx, m, k);
            }
            if out.events.len() == before {
                let e = ops_event(
                    out,
                    &ctx,
                    value_raw,
                    &value,
                    Some("`smb_message_echoes` change without message_echoes"),
                );
                out.push(e);
            }
        }
        Some(_) => {
            let e = ops_event(out, &ctx, value_raw, &value, None);
            out.push(e);
        }
        None => {
            let mut e = ops_event(out, &ctx, change_raw, &value, Some("change has no `field`"));
            e.kind = Kind::Unknown;
            out.push(e);
        }
    }
}

/// Builds the event of an element that cannot be read as an object (kept as `unknown`).
fn unreadable<'a>(
    out: &mut Out<'_, 'a>,
    ctx: &ChangeCtx<'a>,
    raw: &'a RawValue,
    what: &str,
    k: usize,
) {
    let dedupe = format!("unknown:{}", ctx.hash(raw, what));
    let mut e = out.event(Kind::Unknown, dedupe, ctx.ops_conversation(out.req.source));
    ctx.stamp(&mut e);
    e.reason = Some(Cow::Owned(format!("{what}[{k}] is not a readable object")));
    e.payload = Some(Cow::Borrowed(raw));
    out.push(e);
}

fn message<'a>(out: &mut Out<'_, 'a>, ctx: &ChangeCtx<'a>, raw: &'a RawValue, k: usize) {
    let Some(m) = parse::<Message<'a>>(raw).filter(|_| is_object(raw)) else {
        return unreadable(out, ctx, raw, "messages", k);
    };
    let dedupe = match m.id.get() {
        Some(id) => format!("msg:{id}"),
        None => format!("msg:{}", ctx.hash(raw, "")),
    };
    let mut e = out.event(Kind::Message, dedupe, String::new());
    ctx.stamp(&mut e);
    e.type_ = m.type_.take();
    e.timestamp = ts(&m.timestamp);
    e.message_id = m.id.take();
    e.group_id = m.group_id.take();
    e.wa_id = m.from.take();
    e.user_id = m.from_user_id.take();
    if e.wa_id.is_none() && e.user_id.is_none() {
        // `system` messages (number/BSUID changes) name the user inside `system`.
        let s: System<'a> = parse_or_default(m.system);
        e.wa_id = s.wa_id.take();
        e.user_id = s.user_id.take();
    }
    ctx.user(&mut e, out.req.source);
    e.payload = Some(Cow::Borrowed(raw));
    out.push(e);
}

fn status<'a>(out: &mut Out<'_, 'a>, ctx: &ChangeCtx<'a>, raw: &'a RawValue, k: usize) {
    let Some(s) = parse::<Status<'a>>(raw).filter(|_| is_object(raw)) else {
        return unreadable(out, ctx, raw, "statuses", k);
    };
    let dedupe = match s.id.get() {
        Some(id) => format!("status:{id}:{}", s.status.get().unwrap_or_default()),
        None => format!("status:{}", ctx.hash(raw, "")),
    };
    let mut e = out.event(Kind::Status, dedupe, String::new());
    ctx.stamp(&mut e);
    e.type_ = s.status.take();
    e.timestamp = ts(&s.timestamp);
    e.message_id = s.id.take();
    if s.recipient_type.get() == Some("group") {
        e.group_id = s.recipient_id.take();
        e.wa_id = s.recipient_participant_id.take();
    } else {
        e.wa_id = s.recipient_id.take();
    }
    e.user_id = s.recipient_user_id.take();
    ctx.user(&mut e, out.req.source);
    e.payload = Some(Cow::Borrowed(raw));
    out.push(e);
}

fn echo<'a>(out: &mut Out<'_, 'a>, ctx: &ChangeCtx<'a>, raw: &'a RawValue, k: usize) {
    let Some(m) = parse::<Echo<'a>>(raw).filter(|_| is_object(raw)) else {
        return unreadable(out, ctx, raw, "message_echoes", k);
    };
    let dedupe = match m.id.get() {
        Some(id) => format!("echo:{id}"),
        None => format!("echo:{}", ctx.hash(raw, "")),
    };
    let mut e = out.event(Kind::Echo, dedupe, String::new());
    ctx.stamp(&mut e);
    e.type_ = m.type_.take();
    e.timestamp = ts(&m.timestamp);
    e.message_id = m.id.take();
    e.group_id = m.group_id.take();
    e.wa_id = m.to.take();
    e.user_id = m.to_user_id.take();
    ctx.user(&mut e, out.req.source);
    e.payload = Some(Cow::Borrowed(raw));
    out.push(e);
}

fn value_error<'a>(
    out: &mut Out<'_, 'a>,
    ctx: &ChangeCtx<'a>,
    value: &'a RawValue,
    raw: &'a RawValue,
    k: usize,
) {
    let err: ErrorObj<'a> = parse(raw).unwrap_or_default();
    // Value-level errors carry no id: hash the whole value, plus the position in `errors[]`.
    let dedupe = format!("error:{}:{k}", ctx.hash(value, "errors"));
    let mut e = out.event(Kind::Error, dedupe, ctx.ops_conversation(out.req.source));
    ctx.stamp(&mut e);
    e.type_ = err.code.take();
    e.timestamp = ts(&ctx.entry_time);
    e.payload = Some(Cow::Borrowed(raw));
    out.push(e);
}

/// One event for a whole change: `type` is the value's `event`, `decision`, or the first
/// `groups[]`/`user_preferences[]`/`state_sync[]` element's type, else the field name.
fn ops_event<'a>(
    out: &Out<'_, 'a>,
    ctx: &ChangeCtx<'a>,
    payload: &'a RawValue,
    value: &Value<'a>,
    reason: Option<&'static str>,
) -> Event<'a> {
    let dedupe = format!("ops:{}", ctx.hash(payload, ""));
    let mut e = out.event(Kind::Ops, dedupe, ctx.ops_conversation(out.req.source));
    ctx.stamp(&mut e);
    let first = [value.groups, value.user_preferences, value.state_sync]
        .into_iter()
        .find_map(|a| elements(a).into_iter().next())
        .and_then(parse::<OpsItem<'a>>)
        .unwrap_or_default();
    e.type_ = value
        .event
        .0
        .clone()
        .or_else(|| value.decision.0.clone())
        .or_else(|| first.type_.0.clone())
        .or_else(|| first.value.0.clone())
        .or_else(|| ctx.field.clone());
    e.timestamp = ts(&ctx.entry_time).or_else(|| ts(&first.timestamp));
    e.group_id = first.group_id.take();
    e.wa_id = first.wa_id.take();
    e.user_id = first.user_id.take();
    if let Some((c, raw)) = ctx.contact(e.wa_id.as_deref(), e.user_id.as_deref()) {
        e.wa_id = e.wa_id.take().or_else(|| c.wa_id.0.clone());
        e.user_id = e.user_id.take().or_else(|| c.user_id.0.clone());
        let p: Profile<'a> = parse_or_default(c.profile);
        e.name = p.name.take();
        e.username = p.username.take();
        e.contact = Some(Cow::Borrowed(*raw));
    }
    e.reason = reason.map(Cow::Borrowed);
    e.payload = Some(Cow::Borrowed(payload));
    e
}

/// Caps text copied from a body into a `reason`.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
