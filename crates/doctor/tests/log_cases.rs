//! Every shared proxy-log case yields its expected primary class and the negative expectations
//! hold (testdata/doctor/proxy-logs/EXPECTED.md); plus correlation rules from the issue.

mod common;

use wagate_doctor::logs::{Class, Report, analyze_paths, analyze_str, report::to_json};

fn analyze(file: &str) -> Report {
    analyze_paths(&[common::testdata(&format!("proxy-logs/{file}"))]).expect("readable")
}

fn primary(file: &str) -> Option<&'static str> {
    analyze(file).primary().map(Class::name)
}

/// Every client-visible failure of the file is in `class`.
fn all_visible_in(r: &Report, class: Class) {
    for (c, s) in &r.classes {
        if *c != class {
            assert_eq!(
                s.client_visible, 0,
                "{c:?} has client-visible failures: {s:?}"
            );
        }
    }
}

#[test]
fn nginx_keepalive_race() {
    let r = analyze("nginx-keepalive-race-prematurely-closed.log");
    assert_eq!(r.primary(), Some(Class::KeepaliveRace));
    let s = &r.classes[&Class::KeepaliveRace];
    assert_eq!((s.count, s.client_visible), (2, 2));
    assert_eq!(s.statuses.get(&502), Some(&2));
    all_visible_in(&r, Class::KeepaliveRace);
}

#[test]
fn nginx_read_timeout_musl_and_glibc() {
    assert_eq!(
        primary("nginx-read-timeout-504.log"),
        Some("upstream_read_timeout")
    );
    let musl = common::read("proxy-logs/nginx-read-timeout-504.log");
    assert!(musl.contains("(110: Operation timed out)"));
    let glibc = musl.replace("(110: Operation timed out)", "(110: Connection timed out)");
    let r = analyze_str(&glibc);
    assert_eq!(r.primary(), Some(Class::UpstreamReadTimeout));
    assert_eq!(r.classes[&Class::UpstreamReadTimeout].client_visible, 2);
    // Error lines alone (no access log) still classify, for both wordings.
    let errors_only: String = glibc
        .lines()
        .filter(|l| l.contains("[error]"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        analyze_str(&errors_only).primary(),
        Some(Class::UpstreamReadTimeout)
    );
}

#[test]
fn nginx_connect_refused_rollout() {
    let r = analyze("nginx-connect-refused-rollout.log");
    assert_eq!(r.primary(), Some(Class::UpstreamRefused));
    let s = &r.classes[&Class::UpstreamRefused];
    // `502, 200` recovered by the retry (not client-visible); `502, 502, 502` reached the client.
    assert_eq!((s.count, s.client_visible, s.recovered), (2, 1, 1));
    all_visible_in(&r, Class::UpstreamRefused);
}

#[test]
fn nginx_body_too_large() {
    let r = analyze("nginx-body-too-large-413.log");
    assert_eq!(r.primary(), Some(Class::BodyTooLargeProxy));
    assert_eq!(
        r.classes[&Class::BodyTooLargeProxy].statuses.get(&413),
        Some(&2)
    );
    assert!(!r.classes.contains_key(&Class::BodyTooLargeApp));
}

#[test]
fn nginx_body_buffered_is_not_a_failure() {
    let r = analyze("nginx-body-buffered-tempfile.log");
    assert_eq!(r.primary(), Some(Class::BodyBufferedToDisk));
    assert!(
        r.classes
            .iter()
            .all(|(c, s)| !c.is_failure() && s.client_visible == 0),
        "{:?}",
        r.classes
    );
    let j = to_json(&r);
    assert_eq!(j["primary"], "body_buffered_to_disk");
    assert_eq!(j["classes"][0]["client_visible"], 0);
}

#[test]
fn nginx_no_endpoints() {
    let r = analyze("nginx-no-endpoints-503.log");
    assert_eq!(r.primary(), Some(Class::NoEndpoints));
    assert_eq!(r.classes[&Class::NoEndpoints].statuses.get(&503), Some(&2));
    assert!(
        r.classes[&Class::NoEndpoints].examples[0].contains("does not have any active Endpoint")
    );
}

#[test]
fn nginx_client_abort() {
    assert_eq!(primary("nginx-client-abort-499.log"), Some("client_abort"));
}

#[test]
fn haproxy_sh_race() {
    let r = analyze("haproxy-sh-keepalive-race.log");
    assert_eq!(r.primary(), Some(Class::KeepaliveRace));
    assert_eq!(r.classes[&Class::KeepaliveRace].client_visible, 2);
    assert_eq!(r.requests, 3);
}

#[test]
fn envoy_uc_race() {
    let r = analyze("envoy-uc-keepalive-race.log");
    assert_eq!(r.primary(), Some(Class::KeepaliveRace));
    assert_eq!(
        r.classes[&Class::KeepaliveRace].statuses.get(&503),
        Some(&2)
    );
}

#[test]
fn mixed_input_keeps_every_class() {
    let dir = common::testdata("proxy-logs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let r = analyze_paths(&files).unwrap();
    for c in [
        Class::KeepaliveRace,
        Class::UpstreamReadTimeout,
        Class::UpstreamRefused,
        Class::BodyTooLargeProxy,
        Class::BodyBufferedToDisk,
        Class::NoEndpoints,
        Class::ClientAbort,
    ] {
        assert!(r.classes.contains_key(&c), "{c:?} missing");
    }
    assert_eq!(r.classes[&Class::KeepaliveRace].client_visible, 6);
}

const ACCESS: &str = r#"203.0.113.9 - - [02/Mar/2026:10:00:00 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "probe" 100 0.012 [ns-svc-8080] [] 10.244.1.17:8080, 10.244.2.23:8080 0, 2 0.000, 0.011 502, 200 r1"#;

#[test]
fn get_recovered_race_is_reported_but_not_client_visible() {
    let r = analyze_str(ACCESS);
    let s = &r.classes[&Class::KeepaliveRace];
    assert_eq!((s.count, s.client_visible, s.recovered), (1, 0, 1));
    assert_eq!(r.primary(), Some(Class::KeepaliveRace));
}

#[test]
fn app_413_is_the_apps_own_limit() {
    let l = r#"203.0.113.9 - - [02/Mar/2026:10:00:00 +0000] "POST /webhook HTTP/1.1" 413 20 "-" "ua" 2400000 0.050 [ns-svc-8080] [] 10.244.1.17:8080 20 0.049 413 r2"#;
    let r = analyze_str(l);
    assert_eq!(r.primary(), Some(Class::BodyTooLargeApp));
}

#[test]
fn reading_upstream_is_not_a_keepalive_race() {
    let log = "2026/03/02 10:00:05 [error] 31#31: *1 upstream prematurely closed connection while reading upstream, client: 203.0.113.9, server: x, request: \"POST /webhook HTTP/1.1\", upstream: \"http://10.244.1.17:8080/webhook\", host: \"x\"\n\
203.0.113.9 - - [02/Mar/2026:10:00:05 +0000] \"POST /webhook HTTP/1.1\" 200 10 \"-\" \"ua\" 2318 0.5 [ns-svc-8080] [] 10.244.1.17:8080 10 0.5 200 r3\n";
    let r = analyze_str(log);
    assert_eq!(r.primary(), Some(Class::UpstreamDiedMidBody));
    assert!(!r.classes.contains_key(&Class::KeepaliveRace));
}

#[test]
fn slow_premature_close_is_a_crash_not_a_race() {
    let log = "2026/03/02 10:00:35 [error] 31#31: *1 upstream prematurely closed connection while reading response header from upstream, client: 203.0.113.9, server: x, request: \"POST /webhook HTTP/1.1\", upstream: \"http://10.244.1.17:8080/webhook\", host: \"x\"\n\
203.0.113.9 - - [02/Mar/2026:10:00:35 +0000] \"POST /webhook HTTP/1.1\" 502 552 \"-\" \"ua\" 2318 30.001 [ns-svc-8080] [] 10.244.1.17:8080 0 30.001 502 r4\n";
    assert_eq!(analyze_str(log).primary(), Some(Class::UpstreamCrashed));
}

#[test]
fn traefik_error_lines() {
    let log = "time=\"2026-03-02T10:00:00Z\" level=debug msg=\"'502 Bad Gateway' caused by: EOF\" error=\"EOF\"\n\
time=\"2026-03-02T10:00:01Z\" level=debug msg=\"'499' caused by: context canceled\" error=\"context canceled\"\n";
    let r = analyze_str(log);
    assert_eq!(
        r.classes[&Class::KeepaliveRace].statuses.get(&502),
        Some(&1)
    );
    assert_eq!(r.classes[&Class::ClientAbort].count, 1);
}

#[test]
fn unmatched_errors_are_bounded_and_counted() {
    // 150k error lines with distinct clients and no access lines: more than MAX_PENDING wait,
    // the oldest are flushed as unmatched; every one is counted once.
    let mut a = wagate_doctor::logs::Analyzer::new();
    for i in 0..150_000u32 {
        a.feed(&format!(
            "2026/03/02 10:00:00 [error] 1#1: *{i} connect() failed (111: Connection refused) while connecting to upstream, client: 10.{}.{}.{}, server: x, request: \"POST /webhook HTTP/1.1\", upstream: \"http://10.244.1.17:8080/webhook\", host: \"x\"",
            i >> 16, (i >> 8) & 255, i & 255
        ));
    }
    let r = a.finish();
    assert_eq!(r.classes[&Class::UpstreamRefused].count, 150_000);
}
