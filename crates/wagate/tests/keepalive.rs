//! Connection behaviour on raw sockets: the idle keep-alive timer is independent of the header
//! timer, slowloris is cut at the header timeout, the connection cap holds extra connections in
//! the backlog, and SIGTERM drains.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Reads one HTTP/1.1 response (head + Content-Length body); returns the head.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(
            n == 1,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head
}

/// Blocks until the peer closes; returns how long that took from `since`.
fn time_to_close(s: &mut TcpStream, since: Instant, limit: Duration) -> Duration {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => since.elapsed(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => since.elapsed(),
        other => panic!("expected close, got {other:?}"),
    }
}

fn handshake_request() -> Vec<u8> {
    format!("GET /webhook?hub.mode=subscribe&hub.verify_token={TOKEN}&hub.challenge=7 HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn start(extra: &str) -> (tempfile::TempDir, Wagate) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Wagate::start_in(dir.path(), &config_text(dir.path(), extra, ""));
    (dir, gw)
}

#[test]
fn idle_connection_outlives_the_header_timeout_and_closes_at_the_idle_timeout() {
    let (_d, gw) = start("idle_timeout = \"3s\"\nheader_read_timeout = \"1s\"");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(&handshake_request()).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    // Idle for twice the header timeout: a single hyper timer would have closed it by now.
    std::thread::sleep(Duration::from_secs(2));
    s.write_all(&handshake_request()).unwrap();
    let head = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"));
    let last = Instant::now();
    let closed = time_to_close(&mut s, last, Duration::from_secs(6));
    assert!(
        closed >= Duration::from_millis(2900) && closed < Duration::from_millis(3600),
        "closed after {closed:?}, want ~3s"
    );
}

#[test]
fn silent_connection_closes_at_the_idle_timeout() {
    let (_d, gw) = start("idle_timeout = \"2s\"\nheader_read_timeout = \"1s\"");
    let started = Instant::now();
    let mut s = TcpStream::connect(gw.addr).unwrap();
    let closed = time_to_close(&mut s, started, Duration::from_secs(5));
    assert!(
        closed >= Duration::from_millis(1900) && closed < Duration::from_millis(2600),
        "closed after {closed:?}, want ~2s"
    );
}

#[test]
fn slowloris_headers_are_cut_at_the_header_timeout() {
    let (_d, gw) = start("idle_timeout = \"10s\"\nheader_read_timeout = \"1s\"");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    let first = Instant::now();
    s.write_all(b"POST /webhook HTTP/1.1\r\n").unwrap();
    let mut writer = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for i in 0..30 {
            std::thread::sleep(Duration::from_millis(300));
            if writer
                .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
    });
    let closed = time_to_close(&mut s, first, Duration::from_secs(8));
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_millis(1700),
        "closed after {closed:?}, want ~1s"
    );
    trickle.join().unwrap();
}

#[test]
fn connections_above_the_cap_wait_in_the_backlog() {
    let (_d, gw) = start("max_connections = 2");
    let mut a = TcpStream::connect(gw.addr).unwrap();
    let _b = TcpStream::connect(gw.addr).unwrap();
    a.write_all(&handshake_request()).unwrap();
    assert!(read_response(&mut a).starts_with("HTTP/1.1 200"));
    // The kernel completes the handshake, but we do not accept it while at the cap.
    let mut c = TcpStream::connect(gw.addr).unwrap();
    c.write_all(&handshake_request()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = c.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "{early:?}"
    );
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(read_response(&mut c).starts_with("HTTP/1.1 200"));
}

#[test]
fn sigterm_fails_readiness_at_once_closes_connections_during_drain_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_text(dir.path(), "", "");
    cfg = cfg.replace("drain_delay = \"1s\"", "drain_delay = \"2s\"");
    let mut gw = Wagate::start_in(dir.path(), &cfg);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(&handshake_request()).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));

    let ready = |admin: std::net::SocketAddr| {
        let mut a = TcpStream::connect(admin).unwrap();
        a.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        a.read_to_string(&mut out).unwrap();
        out
    };
    assert!(ready(gw.admin).starts_with("HTTP/1.1 200"));
    gw.signal(15);
    std::thread::sleep(Duration::from_millis(200));
    let r = ready(gw.admin);
    assert!(
        r.starts_with("HTTP/1.1 503") && r.contains("draining"),
        "{r}"
    );
    // Still serving during the drain delay, but telling the proxy not to reuse the connection.
    let body = std::fs::read(payloads_dir().join("cloud_msg_text.json")).unwrap();
    let req = format!(
        "POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
        sign(&body),
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let head = read_response(&mut s).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("connection: close"),
        "{head}"
    );
    let status = gw
        .wait(Duration::from_secs(10))
        .expect("exited after the drain");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        gw.export().len(),
        1,
        "the request accepted during the drain is stored"
    );
}
