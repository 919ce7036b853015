//! Built-in webhook bodies, written in the key order Meta uses and turned into wire form once.
//!
//! Shapes follow the corpus in testdata/payloads (Meta "messages webhook reference"; WasenderAPI
//! webhook docs). `{{name}}` placeholders inside strings are filled per request, see
//! [`crate::payload`].

/// One built-in template: its name (for `--templates`) and JSON text with placeholders.
pub struct Template {
    /// Name used by `--templates`.
    pub name: &'static str,
    /// Pretty JSON with `{{var}}` placeholders; converted with [`crate::wire::minify_to_wire`].
    pub json: &'static str,
}

/// Names of the Cloud API templates in the default rotation, in order.
pub const CLOUD_DEFAULT: &[&str] = &[
    "text",
    "interactive",
    "media",
    "location",
    "status",
    "batch",
    "unicode",
];

/// Cloud API (Meta) templates. `status` is also the template used for status fan-out.
pub const CLOUD: &[Template] = &[
    Template {
        name: "text",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "contacts": [{"profile": {"name": "{{name}}"}, "wa_id": "{{from}}"}],
  "messages": [{"from": "{{from}}", "id": "{{wamid}}", "timestamp": "{{ts}}", "type": "text",
    "text": {"body": "Hi, where is my order #{{seq}}? It was due yesterday."}}]},
  "field": "messages"}]}]}"#,
    },
    Template {
        name: "interactive",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "contacts": [{"profile": {"name": "{{name}}"}, "wa_id": "{{from}}"}],
  "messages": [{"from": "{{from}}", "id": "{{wamid}}", "timestamp": "{{ts}}", "type": "interactive",
    "context": {"from": "15550001000", "id": "{{out_wamid}}"},
    "interactive": {"type": "button_reply", "button_reply": {"id": "confirm-yes", "title": "Yes, confirm"}}}]},
  "field": "messages"}]}]}"#,
    },
    Template {
        name: "media",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "contacts": [{"profile": {"name": "{{name}}"}, "wa_id": "{{from}}"}],
  "messages": [{"from": "{{from}}", "id": "{{wamid}}", "timestamp": "{{ts}}", "type": "image",
    "image": {"caption": "Receipt for order #{{seq}}", "mime_type": "image/jpeg",
      "sha256": "IWw5U2/GwUy1MzTFWzamaPtkdkyvi0wAQHMXan65Y5s=", "id": "{{media_id}}",
      "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={{media_id}}&source=webhook&ext={{ts}}&hash=ARsyntheticB86C197722A3032359732893"}}]},
  "field": "messages"}]}]}"#,
    },
    Template {
        name: "location",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "contacts": [{"profile": {"name": "{{name}}"}, "wa_id": "{{from}}"}],
  "messages": [{"from": "{{from}}", "id": "{{wamid}}", "timestamp": "{{ts}}", "type": "location",
    "location": {"address": "1 Example Street, Springfield, ST 00000", "latitude": 37.4421625,
      "longitude": -122.1619226, "name": "Example Coffee", "url": "https://example.com/"}}]},
  "field": "messages"}]}]}"#,
    },
    Template {
        name: "status",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "statuses": [{"id": "{{out_wamid}}", "status": "{{status}}", "timestamp": "{{ts}}", "recipient_id": "{{from}}",
    "pricing": {"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"}}]},
  "field": "messages"}]}]}"#,
    },
    Template {
        name: "batch",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "contacts": [{"profile": {"name": "{{name}}"}, "wa_id": "{{from}}"}, {"profile": {"name": "Test User B"}, "wa_id": "{{from2}}"}],
  "messages": [
    {"from": "{{from}}", "id": "{{wamid}}", "timestamp": "{{ts}}", "type": "text", "text": {"body": "First message of the batch"}},
    {"from": "{{from2}}", "id": "{{wamid2}}", "timestamp": "{{ts}}", "type": "text", "text": {"body": "Can I change the delivery address?"}},
    {"from": "{{from}}", "id": "{{wamid3}}", "timestamp": "{{ts}}", "type": "reaction", "reaction": {"message_id": "{{out_wamid}}", "emoji": "👍"}}]},
  "field": "messages"}]}]}"#,
    },
    Template {
        name: "unicode",
        json: r#"{"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"value": {
  "messaging_product": "whatsapp",
  "metadata": {"display_phone_number": "15550001000", "phone_number_id": "100000000000101"},
  "contacts": [{"profile": {"name": "José Müller 🧑‍💻"}, "wa_id": "{{from}}"}],
  "messages": [{"from": "{{from}}", "id": "{{wamid}}", "timestamp": "{{ts}}", "type": "text",
    "text": {"body": "Olá! Café ☕ 👨‍👩‍👧‍👦 🇧🇷 مرحبا שלום 你好 e\u0301 \"quoted\" back\\slash https://example.com/a/b </script>"}}]},
  "field": "messages"}]}]}"#,
    },
];

/// WasenderAPI templates (`{event, timestamp, data}`), used with `--provider wasender`.
pub const WASENDER: &[Template] = &[
    Template {
        name: "text",
        json: r#"{"event": "messages.upsert", "timestamp": {{ts}}, "data": {"messages": {
  "key": {"id": "{{key_id}}", "fromMe": false, "remoteJid": "{{from}}@s.whatsapp.net"},
  "messageBody": "Hi, where is my order #{{seq}}?",
  "message": {"conversation": "Hi, where is my order #{{seq}}?"},
  "pushName": "{{name}}", "messageTimestamp": {{ts}}}}}"#,
    },
    Template {
        name: "status",
        json: r#"{"event": "messages.update", "timestamp": {{ts}}, "data": {
  "key": {"id": "{{key_id}}", "fromMe": true, "remoteJid": "{{from}}@s.whatsapp.net"},
  "update": {"status": 3}}}"#,
    },
];
