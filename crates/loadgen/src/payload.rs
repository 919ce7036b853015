//! Request bodies: built-in templates with fresh ids per request, or files sent byte-exact.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;

use crate::templates::{self, Template};
use crate::wire;

/// One webhook body to deliver, with what it carries (for the summary).
#[derive(Debug, Clone)]
pub struct Body {
    /// Exact bytes to POST.
    pub bytes: Bytes,
    /// WhatsApp messages in the body (`entry[].changes[].value.messages[]`).
    pub messages: u32,
    /// WhatsApp statuses in the body (`entry[].changes[].value.statuses[]`).
    pub statuses: u32,
}

/// Which bodies to send.
#[derive(Debug, Clone)]
pub enum PayloadSource {
    /// Built-in Cloud API templates (the named ones, or all of [`templates::CLOUD_DEFAULT`]).
    CloudTemplates(Vec<String>),
    /// Built-in WasenderAPI templates.
    WasenderTemplates,
    /// Every `*.json` file of a directory, sorted by name, sent byte-exact in rotation.
    Dir(PathBuf),
}

/// Why a payload source could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Reading the directory or a file failed.
    #[error("cannot read payloads from {path}: {source}")]
    Io {
        /// Path that failed.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The directory holds no `*.json` file.
    #[error("no *.json files in {0}")]
    Empty(PathBuf),
    /// A `--templates` name is unknown.
    #[error(
        "unknown template {0:?} (known: text, interactive, media, location, status, batch, unicode)"
    )]
    UnknownTemplate(String),
}

/// Placeholder of a compiled template.
#[derive(Debug, Clone, Copy)]
enum Var {
    Wamid(u8),
    OutWamid,
    KeyId,
    Ts,
    From,
    From2,
    Name,
    Seq,
    MediaId,
    Status,
}

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A template in wire form, split at its placeholders.
#[derive(Debug, Clone)]
struct Compiled {
    parts: Vec<Part>,
    messages: u32,
    statuses: u32,
}

impl Compiled {
    fn new(t: &Template) -> Self {
        let wire = wire::minify_to_wire(t.json);
        let mut parts = Vec::new();
        let mut rest = wire.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let name = &rest[start + 2..start + len];
            let var = match name {
                "wamid" => Var::Wamid(0),
                "wamid2" => Var::Wamid(1),
                "wamid3" => Var::Wamid(2),
                "out_wamid" => Var::OutWamid,
                "key_id" => Var::KeyId,
                "ts" => Var::Ts,
                "from" => Var::From,
                "from2" => Var::From2,
                "name" => Var::Name,
                "seq" => Var::Seq,
                "media_id" => Var::MediaId,
                "status" => Var::Status,
                _ => {
                    // Not a placeholder: keep the text as written.
                    parts.push(Part::Lit(rest[..start + len + 2].to_owned()));
                    rest = &rest[start + len + 2..];
                    continue;
                }
            };
            parts.push(Part::Lit(rest[..start].to_owned()));
            parts.push(Part::Var(var));
            rest = &rest[start + len + 2..];
        }
        parts.push(Part::Lit(rest.to_owned()));
        let (messages, statuses) = match t.name {
            "batch" => (3, 0),
            "status" => (0, 1),
            _ => (1, 0),
        };
        Self {
            parts,
            messages,
            statuses,
        }
    }
}

/// Values for one rendering.
struct Ctx<'a> {
    seq: u64,
    ts: u64,
    run: u32,
    from: String,
    from2: String,
    status: &'a str,
    /// Id of the business's outgoing message this body refers to (statuses, replies).
    out_seq: u64,
}

/// Builds a wamid with the real byte layout (testdata/payloads/INDEX.md): base64 of
/// `1c 18 <len><phone> 15 02 00 <12 in | 11 out> 18 <len><key> 00`, key = 20 (in) or 18 (out)
/// uppercase hex characters; the key holds a per-run id and a counter, so ids never repeat.
pub fn wamid(phone: &str, incoming: bool, run: u32, counter: u64) -> String {
    let key = if incoming {
        format!("{run:08X}{:012X}", counter & 0xFFFF_FFFF_FFFF)
    } else {
        format!("{:06X}{:012X}", run & 0xFF_FFFF, counter & 0xFFFF_FFFF_FFFF)
    };
    let mut raw = Vec::with_capacity(48);
    raw.extend_from_slice(&[0x1c, 0x18, phone.len() as u8]);
    raw.extend_from_slice(phone.as_bytes());
    raw.extend_from_slice(&[
        0x15,
        0x02,
        0x00,
        if incoming { 0x12 } else { 0x11 },
        0x18,
        key.len() as u8,
    ]);
    raw.extend_from_slice(key.as_bytes());
    raw.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn render(c: &Compiled, ctx: &Ctx<'_>) -> Bytes {
    let mut out = String::with_capacity(1024);
    for part in &c.parts {
        match part {
            Part::Lit(s) => out.push_str(s),
            Part::Var(v) => {
                let value = match v {
                    Var::Wamid(i) => wamid(&ctx.from, true, ctx.run, ctx.seq * 4 + u64::from(*i)),
                    Var::OutWamid => wamid(&ctx.from, false, ctx.run, ctx.out_seq),
                    Var::KeyId => {
                        format!("3EB0{:08X}{:012X}", ctx.run, ctx.out_seq & 0xFFFF_FFFF_FFFF)
                    }
                    Var::Ts => ctx.ts.to_string(),
                    Var::From => ctx.from.clone(),
                    Var::From2 => ctx.from2.clone(),
                    Var::Name => format!("Test User {}", ctx.seq % 10_000),
                    Var::Seq => ctx.seq.to_string(),
                    Var::MediaId => format!("{}", 1_000_000_000_000_000 + ctx.seq),
                    Var::Status => ctx.status.to_owned(),
                };
                out.push_str(&wire::escape_str(&value));
            }
        }
    }
    Bytes::from(out)
}

/// Status sequence of one outgoing message (Meta "status" reference).
const STATUS_CYCLE: &[&str] = &["sent", "delivered", "read"];

/// Produces bodies in rotation, with `statuses_per_message` status bodies after each message
/// (one POST per status, as Meta sends them).
pub struct Generator {
    bodies: Rotation,
    status: Compiled,
    statuses_per_message: u32,
    pending_statuses: std::collections::VecDeque<Ctx<'static>>,
    seq: u64,
    run: u32,
}

enum Rotation {
    Templates(Vec<Compiled>, usize),
    Files(Vec<Body>, usize),
}

/// Counts `entry[].changes[].value.{messages,statuses}[]` of a Cloud API body (0 for others).
pub fn count_items(bytes: &[u8]) -> (u32, u32) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return (0, 0);
    };
    let mut counts = (0u32, 0u32);
    let entries = v
        .get("entry")
        .and_then(|e| e.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entry in entries {
        let changes = entry
            .get("changes")
            .and_then(|c| c.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for change in changes {
            let value = change.get("value");
            let len = |k: &str| {
                value
                    .and_then(|v| v.get(k))
                    .and_then(|a| a.as_array())
                    .map_or(0, |a| a.len() as u32)
            };
            counts.0 += len("messages");
            counts.1 += len("statuses");
        }
    }
    counts
}

fn read_dir(dir: &Path) -> Result<Vec<Body>, PayloadError> {
    let io = |source| PayloadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(PayloadError::Empty(dir.to_owned()));
    }
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(|source| PayloadError::Io {
                path: path.clone(),
                source,
            })?;
            let (messages, statuses) = count_items(&bytes);
            Ok(Body {
                bytes: Bytes::from(bytes),
                messages,
                statuses,
            })
        })
        .collect()
}

impl Generator {
    /// Prepares a generator; reads and checks the payload directory up front.
    ///
    /// # Errors
    /// [`PayloadError`] when the directory is unreadable or empty, or a template name is unknown.
    pub fn new(source: &PayloadSource, statuses_per_message: u32) -> Result<Self, PayloadError> {
        let find = |set: &[Template], name: &str| {
            set.iter()
                .find(|t| t.name == name)
                .map(Compiled::new)
                .ok_or_else(|| PayloadError::UnknownTemplate(name.to_owned()))
        };
        let (bodies, status) = match source {
            PayloadSource::CloudTemplates(names) => {
                let names: Vec<&str> = if names.is_empty() {
                    templates::CLOUD_DEFAULT.to_vec()
                } else {
                    names.iter().map(String::as_str).collect()
                };
                let compiled = names
                    .iter()
                    .map(|n| find(templates::CLOUD, n))
                    .collect::<Result<_, _>>()?;
                (
                    Rotation::Templates(compiled, 0),
                    find(templates::CLOUD, "status")?,
                )
            }
            PayloadSource::WasenderTemplates => (
                Rotation::Templates(vec![find(templates::WASENDER, "text")?], 0),
                find(templates::WASENDER, "status")?,
            ),
            PayloadSource::Dir(dir) => (
                Rotation::Files(read_dir(dir)?, 0),
                find(templates::CLOUD, "status")?,
            ),
        };
        Ok(Self {
            bodies,
            status,
            statuses_per_message,
            pending_statuses: Default::default(),
            seq: 0,
            run: rand::random(),
        })
    }

    fn user(seq: u64) -> String {
        format!("1555000{:04}", 1000 + seq % 9000)
    }

    /// Returns the next body to send.
    pub fn next_body(&mut self) -> Body {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(mut ctx) = self.pending_statuses.pop_front() {
            ctx.ts = ts;
            return Body {
                bytes: render(&self.status, &ctx),
                messages: 0,
                statuses: 1,
            };
        }
        self.seq += 1;
        let seq = self.seq;
        let ctx = Ctx {
            seq,
            ts,
            run: self.run,
            from: Self::user(seq),
            from2: Self::user(seq + 4500),
            status: STATUS_CYCLE[1],
            out_seq: seq * 8,
        };
        let body = match &mut self.bodies {
            Rotation::Templates(list, i) => {
                let c = &list[*i % list.len()];
                *i += 1;
                Body {
                    bytes: render(c, &ctx),
                    messages: c.messages,
                    statuses: c.statuses,
                }
            }
            Rotation::Files(list, i) => {
                let b = list[*i % list.len()].clone();
                *i += 1;
                b
            }
        };
        // Each inbound message gets a reply whose statuses arrive as separate POSTs.
        for m in 0..u64::from(body.messages) {
            for k in 0..self.statuses_per_message {
                self.pending_statuses.push_back(Ctx {
                    seq,
                    ts,
                    run: self.run,
                    from: if m == 1 {
                        Self::user(seq + 4500)
                    } else {
                        Self::user(seq)
                    },
                    from2: String::new(),
                    status: STATUS_CYCLE[k as usize % STATUS_CYCLE.len()],
                    out_seq: seq * 8 + 1 + m,
                });
            }
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamid_matches_corpus_layout() {
        // Same layout as the corpus id `wamid.HBgLMTU1NTAwMDEyMzQVAgASGBRB…AA=` (incoming, 20-char key).
        let id = wamid("15550001234", true, 0xA097_6689, 0x4799_BD7A_EF78);
        assert_eq!(
            id,
            "wamid.HBgLMTU1NTAwMDEyMzQVAgASGBRBMDk3NjY4OTQ3OTlCRDdBRUY3OAA="
        );
        let out = wamid("15550001234", false, 0x3E_F1F4, 0x91DA_DF9E_FD30);
        assert_eq!(
            out,
            "wamid.HBgLMTU1NTAwMDEyMzQVAgARGBIzRUYxRjQ5MURBREY5RUZEMzAA"
        );
    }

    #[test]
    fn every_template_renders_valid_ascii_json_with_unique_ids() {
        let mut g = Generator::new(&PayloadSource::CloudTemplates(vec![]), 3).unwrap();
        let mut ids = std::collections::HashSet::new();
        let (mut msgs, mut stats) = (0, 0);
        for _ in 0..60 {
            let b = g.next_body();
            assert!(b.bytes.is_ascii());
            assert!(!b.bytes.windows(2).any(|w| w == b"{{"));
            let v: serde_json::Value = serde_json::from_slice(&b.bytes).unwrap();
            assert_eq!(count_items(&b.bytes), (b.messages, b.statuses));
            msgs += b.messages;
            stats += b.statuses;
            for e in v["entry"].as_array().unwrap() {
                for c in e["changes"].as_array().unwrap() {
                    for m in c["value"]["messages"].as_array().into_iter().flatten() {
                        assert!(
                            ids.insert(m["id"].as_str().unwrap().to_owned()),
                            "duplicate wamid"
                        );
                    }
                }
            }
        }
        // Fan-out: every message is followed by 3 status bodies.
        assert!(msgs > 0);
        assert!(stats >= 3 * (msgs - 3));
    }
}
