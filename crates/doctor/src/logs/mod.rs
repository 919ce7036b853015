//! `wagate doctor logs`: streams proxy logs line by line, correlates nginx error-log lines with
//! access-log lines (bounded window), and counts requests per failure class.
//!
//! Memory is constant: one line buffer, a bounded table of error lines waiting for their
//! access-log line ([`WINDOW_SECS`], [`MAX_PENDING`]) and fixed-size per-class statistics.

pub mod class;
pub mod classify;
pub mod parse;
pub mod report;
pub mod time;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

pub use class::Class;
use parse::{ErrKind, Line};

/// Error lines wait at most this long (log time) for their access-log line.
pub const WINDOW_SECS: i64 = 120;
/// At most this many error lines wait for their access-log line.
pub const MAX_PENDING: usize = 100_000;
/// Example lines kept per class.
pub const MAX_EXAMPLES: usize = 3;
/// Example lines are cut to this many characters.
const EXAMPLE_CHARS: usize = 400;

/// Statistics of one class.
#[derive(Debug, Clone, Default)]
pub struct ClassStats {
    /// Requests (or unmatched error events) in this class.
    pub count: u64,
    /// Of these, failures the client saw.
    pub client_visible: u64,
    /// Of these, failures a retry hid from the client.
    pub recovered: u64,
    /// Final statuses sent to clients, for the client-visible ones.
    pub statuses: BTreeMap<u16, u64>,
    /// First and last time (epoch seconds), when known.
    pub first: Option<i64>,
    /// Last time.
    pub last: Option<i64>,
    /// Up to [`MAX_EXAMPLES`] example lines.
    pub examples: Vec<String>,
}

/// The analysis result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Lines read.
    pub lines: u64,
    /// Request lines recognised (all proxies).
    pub requests: u64,
    /// Per-class statistics.
    pub classes: BTreeMap<Class, ClassStats>,
}

impl Report {
    /// The root-cause class of the client-visible failures (most client-visible requests); when
    /// there are none, the most significant class seen (failures before informational ones).
    pub fn primary(&self) -> Option<Class> {
        let rank = |c: &Class| class::ALL.iter().position(|x| x == c).unwrap_or(usize::MAX);
        let best = |f: &dyn Fn(&ClassStats) -> u64| {
            self.classes
                .iter()
                .filter(|(_, s)| f(s) > 0)
                .max_by(|(a, sa), (b, sb)| f(sa).cmp(&f(sb)).then(rank(b).cmp(&rank(a))))
                .map(|(c, _)| *c)
        };
        best(&|s| s.client_visible)
            .or_else(|| {
                let failures: BTreeMap<Class, ClassStats> = self
                    .classes
                    .iter()
                    .filter(|(c, _)| c.is_failure())
                    .map(|(c, s)| (*c, s.clone()))
                    .collect();
                Report {
                    classes: failures,
                    ..Report::default()
                }
                .primary_by_count()
            })
            .or_else(|| self.primary_by_count())
    }

    fn primary_by_count(&self) -> Option<Class> {
        let rank = |c: &Class| class::ALL.iter().position(|x| x == c).unwrap_or(usize::MAX);
        self.classes
            .iter()
            .filter(|(_, s)| s.count > 0)
            .max_by(|(a, sa), (b, sb)| sa.count.cmp(&sb.count).then(rank(b).cmp(&rank(a))))
            .map(|(c, _)| *c)
    }
}

struct Pending {
    time: i64,
    kind: ErrKind,
    line: String,
}

/// Streaming analyzer: feed lines, then [`Analyzer::finish`].
#[derive(Default)]
pub struct Analyzer {
    report: Report,
    pending: HashMap<u64, Vec<Pending>>,
    order: VecDeque<(i64, u64)>,
    pending_len: usize,
    /// Time of the latest line (not the maximum: concatenated files may go back in time).
    now: i64,
    no_endpoints_lines: Vec<String>,
    no_endpoints_count: u64,
    traefik_errors: u64,
    traefik_failures: Vec<(u16, i64, String)>,
    traefik_failure_count: BTreeMap<u16, u64>,
}

fn key(client: &str, request: &str) -> u64 {
    let mut h = DefaultHasher::new();
    client.hash(&mut h);
    request.hash(&mut h);
    h.finish()
}

fn example(line: &str) -> String {
    match line.char_indices().nth(EXAMPLE_CHARS) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

impl Analyzer {
    /// A fresh analyzer.
    pub fn new() -> Analyzer {
        Analyzer::default()
    }

    fn record(
        &mut self,
        class: Class,
        status: Option<u16>,
        visible: bool,
        recovered: bool,
        time: Option<i64>,
        lines: &[&str],
    ) {
        let s = self.report.classes.entry(class).or_default();
        s.count += 1;
        if visible {
            s.client_visible += 1;
            if let Some(st) = status {
                *s.statuses.entry(st).or_default() += 1;
            }
        }
        if recovered {
            s.recovered += 1;
        }
        if let Some(t) = time {
            s.first = Some(s.first.map_or(t, |f| f.min(t)));
            s.last = Some(s.last.map_or(t, |l| l.max(t)));
        }
        for l in lines {
            if s.examples.len() < MAX_EXAMPLES {
                s.examples.push(example(l));
            }
        }
    }

    fn record_unmatched(&mut self, p: Pending) {
        let class = p.kind.class();
        let visible = class.is_failure();
        self.record(
            class,
            class.typical_status(),
            visible,
            false,
            Some(p.time),
            &[&p.line],
        );
    }

    fn evict(&mut self, force: bool) {
        while let Some(&(t, k)) = self.order.front() {
            if !force
                && t >= self.now - WINDOW_SECS
                && self.pending_len <= MAX_PENDING
                && self.order.len() <= 2 * MAX_PENDING
            {
                break;
            }
            self.order.pop_front();
            let mut expired = Vec::new();
            if let Some(list) = self.pending.get_mut(&k) {
                if let Some(pos) = list.iter().position(|p| p.time == t) {
                    expired.push(list.remove(pos));
                }
                if list.is_empty() {
                    self.pending.remove(&k);
                }
            }
            for p in expired {
                self.pending_len -= 1;
                self.record_unmatched(p);
            }
        }
    }

    /// Feeds one line (without the newline).
    pub fn feed(&mut self, line: &str) {
        self.report.lines += 1;
        match parse::parse_line(line) {
            Line::Other => {}
            Line::NoEndpoints => {
                self.no_endpoints_count += 1;
                if self.no_endpoints_lines.len() < MAX_EXAMPLES {
                    self.no_endpoints_lines.push(example(line));
                }
            }
            Line::Traefik { time, class } => {
                self.traefik_errors += 1;
                self.record(class, class.typical_status(), true, false, time, &[line]);
            }
            Line::Error(e) => {
                self.now = e.time;
                let k = key(e.client, e.request);
                self.pending.entry(k).or_default().push(Pending {
                    time: e.time,
                    kind: e.kind,
                    line: line.to_string(),
                });
                self.order.push_back((e.time, k));
                self.pending_len += 1;
                self.evict(false);
            }
            Line::Request(r) => {
                self.report.requests += 1;
                self.now = r.time;
                if let Some(class) = r.direct {
                    let visible = r.status >= 400 || class == Class::UpstreamDiedMidBody;
                    self.record(class, Some(r.status), visible, false, Some(r.time), &[line]);
                    return;
                }
                if r.traefik {
                    if r.status >= 500 || r.status == 499 {
                        *self.traefik_failure_count.entry(r.status).or_default() += 1;
                        if self.traefik_failures.len() < MAX_EXAMPLES {
                            self.traefik_failures
                                .push((r.status, r.time, example(line)));
                        }
                    }
                    return;
                }
                let mut matched: Vec<Pending> = Vec::new();
                if self.pending_len > 0 {
                    let k = key(r.client, r.request);
                    if let Some(list) = self.pending.get_mut(&k) {
                        let (hit, keep): (Vec<Pending>, Vec<Pending>) = list
                            .drain(..)
                            .partition(|p| (r.time - p.time).abs() <= WINDOW_SECS);
                        *list = keep;
                        if list.is_empty() {
                            self.pending.remove(&k);
                        }
                        self.pending_len -= hit.len();
                        matched = hit;
                    }
                }
                let kinds: Vec<ErrKind> = matched.iter().map(|p| p.kind).collect();
                if let Some(v) = classify::nginx(&r, &kinds) {
                    let mut lines: Vec<&str> =
                        matched.iter().map(|p| p.line.as_str()).take(1).collect();
                    lines.push(line);
                    let time = matched.first().map_or(r.time, |p| p.time.min(r.time));
                    self.record(
                        v.class,
                        Some(r.status),
                        v.visible,
                        v.recovered,
                        Some(time),
                        &lines,
                    );
                }
                self.evict(false);
            }
        }
    }

    /// Flushes waiting error lines and returns the report.
    pub fn finish(mut self) -> Report {
        self.evict(true);
        let ne = self.no_endpoints_lines.clone();
        if self.no_endpoints_count > 0 {
            let s = self.report.classes.entry(Class::NoEndpoints).or_default();
            if s.count == 0 {
                s.count = self.no_endpoints_count;
            }
            let mut ex = ne;
            ex.append(&mut s.examples);
            ex.truncate(MAX_EXAMPLES);
            s.examples = ex;
        }
        if self.traefik_errors == 0 {
            for (status, n) in std::mem::take(&mut self.traefik_failure_count) {
                let class = if status == 499 {
                    Class::ClientAbort
                } else {
                    Class::Unclassified
                };
                let s = self.report.classes.entry(class).or_default();
                s.count += n;
                s.client_visible += n;
                *s.statuses.entry(status).or_default() += n;
            }
            for (status, t, l) in std::mem::take(&mut self.traefik_failures) {
                let class = if status == 499 {
                    Class::ClientAbort
                } else {
                    Class::Unclassified
                };
                let s = self.report.classes.entry(class).or_default();
                s.first = Some(s.first.map_or(t, |f| f.min(t)));
                s.last = Some(s.last.map_or(t, |x| x.max(t)));
                if s.examples.len() < MAX_EXAMPLES {
                    s.examples.push(l);
                }
            }
        }
        self.report
    }
}

/// Analyzes a reader line by line (invalid UTF-8 is replaced, not fatal).
pub fn analyze_reader<R: Read>(reader: R, analyzer: &mut Analyzer) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, reader);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        analyzer.feed(&String::from_utf8_lossy(&buf));
    }
}

/// Analyzes files (`-` = stdin) in order as one stream.
pub fn analyze_paths(paths: &[PathBuf]) -> Result<Report, String> {
    let mut a = Analyzer::new();
    for p in paths {
        if p.as_os_str() == "-" {
            analyze_reader(std::io::stdin().lock(), &mut a).map_err(|e| format!("-: {e}"))?;
        } else {
            let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            analyze_reader(f, &mut a).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(a.finish())
}

/// Analyzes an in-memory log.
pub fn analyze_str(text: &str) -> Report {
    let mut a = Analyzer::new();
    for l in text.lines() {
        a.feed(l);
    }
    a.finish()
}
