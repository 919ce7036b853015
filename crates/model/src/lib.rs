//! WhatsApp webhook event model.
//!
//! [`explode`] turns one stored webhook request (raw bytes, as received) into normalized
//! [`Event`]s: one per message, status, error or echo of a Meta Cloud API batch, one per message
//! or per POST for WasenderAPI and other bridges. Every event carries a `dedupe_key` (equal for
//! the same update delivered twice) and a `conversation_key` (events of one chat share it), and
//! its own JSON exactly as received in `payload`. Rules: `docs/events.md`; event JSON Schema:
//! `docs/event.schema.json`.
//!
//! ```
//! use wagate_model::{explode, Kind, Provider, RawRequest};
//! let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",
//!   "value":{"metadata":{"phone_number_id":"101"},"messages":[{"from":"155","id":"wamid.A","timestamp":"1767225600","type":"text","text":{"body":"hi"}}]}}]}]}"#;
//! let req = RawRequest { id: "r1", source: "meta", provider: Provider::Meta,
//!     received_at: std::time::SystemTime::UNIX_EPOCH, body };
//! let events = explode(&req);
//! assert_eq!(events[0].kind, Kind::Message);
//! assert_eq!(events[0].dedupe_key, "msg:wamid.A");
//! assert_eq!(events[0].conversation_key, "101:155");
//! ```

mod bridge;
mod clock;
mod event;
mod explode;
mod keys;
mod lenient;
mod meta;
mod wasender;

pub mod cli;

pub use event::{Event, Kind, Provider, RawRequest, SCHEMA};
pub use explode::explode;
