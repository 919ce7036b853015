//! Line parsers. Each line's format is detected on its own (mixed input is fine): nginx error
//! log, ingress-nginx/nginx access log (`log-format-upstream` or combined), Kubernetes klog,
//! HAProxy `httplog`, Envoy/Istio access log, Traefik logs.

use super::class::Class;
use super::time;

/// An nginx error-log condition (knowledge base 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// N1 `upstream prematurely closed connection while reading response header`.
    PrematureHeader,
    /// N2 `recv() failed (104: ...) while reading response header`.
    ResetHeader,
    /// N3 `(32|104: ...) while sending request to upstream`.
    SendFailed,
    /// N6 `upstream timed out (110: ...) while reading response header`.
    ReadTimeout,
    /// N5 `upstream timed out (110: ...) while connecting to upstream`.
    ConnectTimeout,
    /// N7 `upstream timed out (110: ...) while sending request`.
    SendTimeout,
    /// N8 `upstream timed out (110: ...) while reading upstream`.
    BodyTimeout,
    /// N4 `connect() failed (111: ...)`, N10 `no live upstreams`.
    Refused,
    /// N9 `upstream prematurely closed connection while reading upstream`.
    DiedMidBody,
    /// N11 `upstream sent too big header`.
    TooBigHeader,
    /// N12/N13 invalid header / SSL handshake.
    Protocol,
    /// N14/N15 `client intended to send too large (chunked )?body`.
    BodyTooLarge,
    /// N16 `a client request body is buffered to a temporary file`.
    Buffered,
    /// N18 `client prematurely closed connection`.
    ClientClosed,
}

impl ErrKind {
    /// Class when nothing else is known.
    pub fn class(self) -> Class {
        match self {
            ErrKind::PrematureHeader | ErrKind::ResetHeader | ErrKind::SendFailed => {
                Class::KeepaliveRace
            }
            ErrKind::ReadTimeout | ErrKind::BodyTimeout => Class::UpstreamReadTimeout,
            ErrKind::ConnectTimeout => Class::UpstreamConnectTimeout,
            ErrKind::SendTimeout => Class::UpstreamSendTimeout,
            ErrKind::Refused => Class::UpstreamRefused,
            ErrKind::DiedMidBody => Class::UpstreamDiedMidBody,
            ErrKind::TooBigHeader => Class::ResponseHeaderTooBig,
            ErrKind::Protocol => Class::ProtocolMismatch,
            ErrKind::BodyTooLarge => Class::BodyTooLargeProxy,
            ErrKind::Buffered => Class::BodyBufferedToDisk,
            ErrKind::ClientClosed => Class::ClientAbort,
        }
    }

    /// Race-type errors that need a small upstream time to be a keep-alive race.
    pub fn is_race_like(self) -> bool {
        matches!(
            self,
            ErrKind::PrematureHeader | ErrKind::ResetHeader | ErrKind::SendFailed
        )
    }
}

/// `(NNN: ` errno marker; matched by number so musl ("Operation timed out") and glibc
/// ("Connection timed out") wordings both work.
fn errno(msg: &str, n: &str) -> bool {
    msg.match_indices('(').any(|(i, _)| {
        let rest = &msg[i + 1..];
        rest.starts_with(n) && rest[n.len()..].starts_with(": ")
    })
}

/// Classifies an nginx error-log message.
pub fn err_kind(msg: &str) -> Option<ErrKind> {
    let header = msg.contains("while reading response header from upstream");
    let sending = msg.contains("while sending request to upstream");
    let connecting = msg.contains("while connecting to upstream");
    let body = msg.contains("while reading upstream");
    Some(if msg.contains("client intended to send too large") {
        ErrKind::BodyTooLarge
    } else if msg.contains("a client request body is buffered to a temporary file") {
        ErrKind::Buffered
    } else if msg.contains("upstream timed out") || errno(msg, "110") {
        if header {
            ErrKind::ReadTimeout
        } else if connecting {
            ErrKind::ConnectTimeout
        } else if sending {
            ErrKind::SendTimeout
        } else {
            ErrKind::BodyTimeout
        }
    } else if msg.contains("upstream prematurely closed connection") {
        if body {
            ErrKind::DiedMidBody
        } else {
            ErrKind::PrematureHeader
        }
    } else if msg.contains("upstream sent too big header") {
        ErrKind::TooBigHeader
    } else if msg.contains("upstream sent no valid HTTP")
        || msg.contains("upstream sent invalid header")
        || msg.contains("SSL handshak")
    {
        ErrKind::Protocol
    } else if errno(msg, "111") || msg.contains("no live upstreams") {
        ErrKind::Refused
    } else if (errno(msg, "104") || errno(msg, "32")) && sending {
        ErrKind::SendFailed
    } else if errno(msg, "104") && header {
        ErrKind::ResetHeader
    } else if errno(msg, "104") && body {
        ErrKind::DiedMidBody
    } else if msg.contains("client prematurely closed connection") {
        ErrKind::ClientClosed
    } else {
        return None;
    })
}

/// A parsed nginx error-log line.
#[derive(Debug, Clone)]
pub struct ErrorLine<'a> {
    /// Epoch seconds.
    pub time: i64,
    /// The condition.
    pub kind: ErrKind,
    /// `client: <ip>`.
    pub client: &'a str,
    /// `request: "<method> <uri> <proto>"`.
    pub request: &'a str,
}

/// Upstream fields of ingress-nginx's `log-format-upstream`.
#[derive(Debug, Clone, Default)]
pub struct Upstream<'a> {
    /// `$upstream_addr` (comma-separated per attempt; `-` when none was contacted).
    pub addr: &'a str,
    /// `$upstream_response_time` per attempt.
    pub time: &'a str,
    /// `$upstream_status` per attempt.
    pub status: &'a str,
}

/// A request line from any proxy.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Epoch seconds.
    pub time: i64,
    /// Client address.
    pub client: &'a str,
    /// `<method> <uri> <proto>`.
    pub request: &'a str,
    /// Final status sent to the client.
    pub status: u16,
    /// ingress-nginx upstream fields.
    pub upstream: Option<Upstream<'a>>,
    /// Class decided by the line itself (HAProxy termination state, Envoy flags).
    pub direct: Option<Class>,
    /// Traefik access line (its failures are explained by Traefik's error lines).
    pub traefik: bool,
}

impl Request<'_> {
    /// `POST`, `GET`, ...
    pub fn method(&self) -> &str {
        self.request.split(' ').next().unwrap_or("")
    }
}

/// One parsed line.
#[derive(Debug, Clone)]
pub enum Line<'a> {
    /// nginx error log.
    Error(ErrorLine<'a>),
    /// Access-log style request.
    Request(Request<'a>),
    /// Controller: `Service "<ns>/<svc>" does not have any active Endpoint`.
    NoEndpoints,
    /// Traefik error line, already classified.
    Traefik { time: Option<i64>, class: Class },
    /// Comment, blank, or nothing we know.
    Other,
}

/// Parses one line.
pub fn parse_line(line: &str) -> Line<'_> {
    let b = line.as_bytes();
    if b.is_empty() || b[0] == b'#' {
        return Line::Other;
    }
    if b.len() > 20
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[19] == b' '
    {
        return parse_nginx_error(line).unwrap_or(Line::Other);
    }
    if b[0] == b'[' && b.len() > 12 && b[1].is_ascii_digit() && b[11] == b'T' {
        return parse_envoy(line).unwrap_or(Line::Other);
    }
    if line.contains("does not have any active Endpoint") {
        return Line::NoEndpoints;
    }
    if line.contains(" haproxy[")
        && let Some(l) = parse_haproxy(line)
    {
        return l;
    }
    if (line.contains("error=\"") || line.contains("\"error\":\""))
        && let Some(l) = parse_traefik_error(line)
    {
        return l;
    }
    parse_access(line)
        .or_else(|| parse_haproxy(line))
        .unwrap_or(Line::Other)
}

fn parse_nginx_error(line: &str) -> Option<Line<'_>> {
    let time = time::nginx_error(&line[..19])?;
    let msg = &line[20..];
    let kind = err_kind(msg)?;
    let client = field(msg, ", client: ", ',').unwrap_or("");
    let request = field(msg, ", request: \"", '"').unwrap_or("");
    Some(Line::Error(ErrorLine {
        time,
        kind,
        client,
        request,
    }))
}

/// Text after `start` up to `end`.
fn field<'a>(s: &'a str, start: &str, end: char) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let rest = &s[i..];
    Some(&rest[..rest.find(end).unwrap_or(rest.len())])
}

/// A quoted string starting at `s[0] == '"'`; returns (content, rest after the closing quote).
fn quoted(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('"')?;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// `ip - user [time] "request" status bytes "ref" "ua" ...`
fn parse_access(line: &str) -> Option<Line<'_>> {
    let (client, rest) = line.split_once(' ')?;
    let ts_start = rest.find('[')? + 1;
    let ts_end = ts_start + rest[ts_start..].find(']')?;
    let time = time::clf(&rest[ts_start..ts_end])?;
    let rest = rest[ts_end + 1..].trim_start();
    let (request, rest) = quoted(rest)?;
    let mut it = rest.trim_start().splitn(3, ' ');
    let status: u16 = it.next()?.parse().ok()?;
    let _bytes = it.next()?;
    let rest = it.next().unwrap_or("").trim_start();
    // referer and user agent
    let (rest, traefik, upstream) = match quoted(rest) {
        Some((_, r)) => match quoted(r.trim_start()) {
            Some((_, r)) => {
                let r = r.trim_start();
                let traefik = r.ends_with("ms") && r.contains('"');
                let upstream = if traefik { None } else { parse_upstream(r) };
                (r, traefik, upstream)
            }
            None => (r, false, None),
        },
        None => (rest, false, None),
    };
    let _ = rest;
    Some(Line::Request(Request {
        time,
        client,
        request,
        status,
        upstream,
        direct: None,
        traefik,
    }))
}

/// `request_length request_time [name] [alt] addr len time status req_id`, where addr/len/time/
/// status are `, `-separated per attempt (` : ` across internal redirects).
fn parse_upstream(s: &str) -> Option<Upstream<'_>> {
    let mut fields: Vec<&str> = Vec::with_capacity(10);
    let mut start: Option<usize> = None;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i <= bytes.len() {
        let at_end = i == bytes.len();
        if at_end || bytes[i] == b' ' {
            if let Some(st) = start {
                // Continue a list: previous char ',' or next token is ':'.
                let prev_comma = i > 0 && bytes[i - 1] == b',';
                let next_colon = !at_end && s[i..].starts_with(" : ");
                let after_colon = i >= 2 && s[..i].ends_with(" :");
                if !at_end && (prev_comma || next_colon || after_colon) {
                    i += 1;
                    continue;
                }
                fields.push(&s[st..i]);
                start = None;
            }
        } else if start.is_none() {
            start = Some(i);
        }
        i += 1;
    }
    if fields.len() < 8 || !fields[2].starts_with('[') {
        return None;
    }
    Some(Upstream {
        addr: fields[4],
        time: fields[6],
        status: fields[7],
    })
}

/// HAProxy `option httplog`: `... client:port [date] frontend backend/server Tr/Tw/Tc/Tr/Ta
/// status bytes cc cs tsc ...`.
fn parse_haproxy(line: &str) -> Option<Line<'_>> {
    let body = &line[line.find("]: ").map_or(0, |i| i + 3)..];
    let (client_port, rest) = body.split_once(' ')?;
    let client = client_port.rsplit_once(':').map_or(client_port, |(c, _)| c);
    let ts = rest.strip_prefix('[')?;
    let end = ts.find(']')?;
    let time = time::clf(&ts[..end])?;
    let mut toks = ts[end + 1..].split_whitespace();
    let _frontend = toks.next()?;
    let _backend = toks.next()?;
    let timers: Vec<i64> = toks
        .next()?
        .split('/')
        .map(|t| t.trim_start_matches('+').parse().unwrap_or(-1))
        .collect();
    let status: u16 = toks.next()?.parse().ok()?;
    let _bytes = toks.next()?;
    let _cc = toks.next()?;
    let _cs = toks.next()?;
    let tsc = toks.next()?;
    if timers.len() != 5 || tsc.len() != 4 {
        return None;
    }
    let request = line
        .rfind(" \"")
        .and_then(|i| quoted(&line[i + 1..]))
        .map_or("", |(r, _)| r);
    let (tr, ta) = (timers[3], timers[4]);
    let direct = match &tsc[..2] {
        "SH" if tr < 0 && (0..100).contains(&ta) => Some(Class::KeepaliveRace),
        "SH" => Some(Class::UpstreamCrashed),
        "sH" | "sD" => Some(Class::UpstreamReadTimeout),
        "SC" => Some(Class::UpstreamRefused),
        "sC" => Some(Class::UpstreamConnectTimeout),
        "SD" => Some(Class::UpstreamDiedMidBody),
        "CH" | "CD" | "cD" | "cR" | "CR" => Some(Class::ClientAbort),
        "PH" => Some(Class::ProtocolMismatch),
        _ if status >= 500 && tsc.starts_with('-') => Some(Class::AppError),
        _ if status >= 500 => Some(Class::Unclassified),
        _ => None,
    };
    Some(Line::Request(Request {
        time,
        client,
        request,
        status,
        upstream: None,
        direct,
        traefik: false,
    }))
}

/// Envoy default / Istio access log.
fn parse_envoy(line: &str) -> Option<Line<'_>> {
    let end = line.find(']')?;
    let time = time::iso(&line[1..end])?;
    let (request, rest) = quoted(line[end + 1..].trim_start())?;
    let mut rest = rest.trim_start();
    let (status, r) = rest.split_once(' ')?;
    let status: u16 = status.parse().ok()?;
    let (flags, r) = r.trim_start().split_once(' ')?;
    rest = r.trim_start();
    // Istio: RESPONSE_CODE_DETAILS, CONNECTION_TERMINATION_DETAILS, "TRANSPORT_FAILURE".
    let first = rest.split(' ').next().unwrap_or("");
    if !first.bytes().all(|b| b.is_ascii_digit()) {
        let mut r = rest.split_once(' ').map_or("", |x| x.1).trim_start();
        r = r.split_once(' ').map_or("", |x| x.1).trim_start();
        if r.starts_with('"') {
            r = quoted(r).map_or("", |x| x.1).trim_start();
        }
        rest = r;
    }
    let mut nums = rest.split_whitespace();
    let _rx = nums.next();
    let _tx = nums.next();
    let duration: i64 = nums.next().and_then(|d| d.parse().ok()).unwrap_or(-1);
    let client = field(line, "\" \"", '"').unwrap_or("");
    let has = |f: &str| flags.split(',').any(|x| x == f);
    let direct = if has("UC") {
        Some(if (0..100).contains(&duration) {
            Class::KeepaliveRace
        } else {
            Class::UpstreamCrashed
        })
    } else if has("UF") {
        Some(Class::UpstreamRefused)
    } else if has("UT") {
        Some(Class::UpstreamReadTimeout)
    } else if has("UH") {
        Some(Class::NoEndpoints)
    } else if has("UR") {
        Some(Class::UpstreamCrashed)
    } else if has("DC") {
        Some(Class::ClientAbort)
    } else if flags == "-" && status >= 500 {
        Some(Class::AppError)
    } else if status >= 500 {
        Some(Class::Unclassified)
    } else {
        None
    };
    Some(Line::Request(Request {
        time,
        client,
        request,
        status,
        upstream: None,
        direct,
        traefik: false,
    }))
}

/// Traefik (logfmt or JSON) error line: `error="EOF"` etc. (knowledge base 3.4).
fn parse_traefik_error(line: &str) -> Option<Line<'_>> {
    let err = field(line, "error=\"", '"').or_else(|| field(line, "\"error\":\"", '"'))?;
    let class =
        if err == "EOF" || err.ends_with(": EOF") || err.contains("connection reset by peer") {
            Class::KeepaliveRace
        } else if err.contains("context canceled") {
            Class::ClientAbort
        } else if err.contains("i/o timeout") || err.contains("timeout awaiting response headers") {
            if err.contains("dial tcp") {
                Class::UpstreamConnectTimeout
            } else {
                Class::UpstreamReadTimeout
            }
        } else if err.contains("connection refused") {
            Class::UpstreamRefused
        } else {
            return None;
        };
    let time = field(line, "time=\"", '"')
        .or_else(|| field(line, "\"time\":\"", '"'))
        .and_then(time::iso);
    Some(Line::Traefik { time, class })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_wordings() {
        let musl = "upstream timed out (110: Operation timed out) while reading response header from upstream";
        let glibc = "upstream timed out (110: Connection timed out) while reading response header from upstream";
        assert_eq!(err_kind(musl), Some(ErrKind::ReadTimeout));
        assert_eq!(err_kind(glibc), Some(ErrKind::ReadTimeout));
        assert_eq!(
            err_kind("upstream timed out (110: Connection timed out) while connecting to upstream"),
            Some(ErrKind::ConnectTimeout)
        );
        assert_eq!(
            err_kind(
                "recv() failed (104: Connection reset by peer) while reading response header from upstream"
            ),
            Some(ErrKind::ResetHeader)
        );
        assert_eq!(
            err_kind("writev() failed (32: Broken pipe) while sending request to upstream"),
            Some(ErrKind::SendFailed)
        );
        assert_eq!(
            err_kind("upstream prematurely closed connection while reading upstream"),
            Some(ErrKind::DiedMidBody)
        );
    }

    #[test]
    fn upstream_lists() {
        let l = "1.2.3.4 - - [02/Mar/2026:15:00:12 +0000] \"POST /webhook HTTP/1.1\" 200 2 \"-\" \"ua x\" 2318 0.013 [ns-svc-8080] [] 10.0.0.1:8080, 10.0.0.2:8080 0, 2 0.000, 0.012 502, 200 abc";
        let Line::Request(r) = parse_line(l) else {
            panic!("not a request")
        };
        let u = r.upstream.unwrap();
        assert_eq!(u.addr, "10.0.0.1:8080, 10.0.0.2:8080");
        assert_eq!(u.time, "0.000, 0.012");
        assert_eq!(u.status, "502, 200");
    }
}
