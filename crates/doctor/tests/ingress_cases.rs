//! Every shared ingress case yields exactly its expected findings (ids and severities, with
//! multiplicity) plus the DEP-001 notice, and none of the ones it must not report
//! (testdata/doctor/ingress/EXPECTED.md).

mod common;

use wagate_doctor::Severity::{self, Error, Info, Warn};
use wagate_doctor::manifests::{AppOptions, check_str};

fn findings(file: &str) -> Vec<(String, Severity)> {
    let yaml = common::read(&format!("ingress/{file}"));
    let report = check_str(file, &yaml, &AppOptions::default()).expect("lint");
    let mut v: Vec<(String, Severity)> = report
        .findings
        .iter()
        .map(|f| (f.rule.to_string(), f.severity))
        .collect();
    v.sort();
    v
}

fn case(file: &str, expected: &[(&str, Severity)], must_not: &[&str]) {
    let got = findings(file);
    let mut want: Vec<(String, Severity)> =
        expected.iter().map(|(r, s)| (r.to_string(), *s)).collect();
    want.push(("DEP-001".into(), Info));
    want.sort();
    assert_eq!(got, want, "{file}");
    for bad in must_not {
        assert!(
            !got.iter().any(|(r, _)| r.starts_with(bad)),
            "{file}: must not report {bad}: {got:?}"
        );
    }
}

#[test]
fn c01_good_baseline() {
    case(
        "01-good-baseline.yaml",
        &[],
        &["KA", "ANN", "CM", "BODY", "TO", "RETRY", "PROBE", "TERM"],
    );
}

#[test]
fn c02_keepalive_default_vs_hyper() {
    case(
        "02-keepalive-default-vs-hyper-30s.yaml",
        &[("KA-001", Error)],
        &["BODY-", "TO-"],
    );
}

#[test]
fn c06_body_size_default() {
    case("06-body-size-default-1m.yaml", &[("BODY-001", Error)], &[]);
}

#[test]
fn c08_tutorial_annotations() {
    case(
        "08-tutorial-nonexistent-annotations.yaml",
        &[
            ("ANN-001", Error),
            ("ANN-001", Error),
            ("ANN-001", Error),
            ("ANN-001", Error),
            ("KA-001", Error),
            ("BODY-001", Error),
        ],
        &[],
    );
    let yaml = common::read("ingress/08-tutorial-nonexistent-annotations.yaml");
    let report = check_str("08", &yaml, &AppOptions::default()).unwrap();
    let ann: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.rule == "ANN-001")
        .map(|f| f.path.as_str())
        .collect();
    for key in [
        "upstream-keepalive-timeout",
        "upstream-keepalive-connections",
        "keepalive-timeout",
        "client-max-body-size",
    ] {
        assert!(
            ann.iter().any(|p| p.ends_with(&format!("/{key}]"))),
            "ANN-001 for {key}: {ann:?}"
        );
    }
    assert!(!ann.iter().any(|p| p.contains("proxy-read-timeout")));
    let msg = |key: &str| {
        report
            .findings
            .iter()
            .find(|f| f.rule == "ANN-001" && f.path.ends_with(&format!("/{key}]")))
            .unwrap()
            .message
            .clone()
    };
    assert!(msg("upstream-keepalive-timeout").contains("ConfigMap-only key"));
    assert!(
        msg("keepalive-timeout").contains("upstream-keepalive-timeout")
            && msg("keepalive-timeout").contains("keep-alive")
    );
    assert!(msg("client-max-body-size").contains("proxy-body-size"));
    // BODY-001 explains why the intended setting did not apply.
    let body = report
        .findings
        .iter()
        .find(|f| f.rule == "BODY-001")
        .unwrap();
    assert!(
        body.message.contains("client-max-body-size"),
        "{}",
        body.message
    );
    assert!(
        body.effective.contains("1m (default)"),
        "{}",
        body.effective
    );
}

#[test]
fn c10_read_timeout() {
    case("10-read-timeout-too-short.yaml", &[("TO-001", Error)], &[]);
}

#[test]
fn c12_probes() {
    case(
        "12-probes-too-aggressive.yaml",
        &[("PROBE-001", Warn)],
        &["PROBE-002"],
    );
    let yaml = common::read("ingress/12-probes-too-aggressive.yaml");
    let report = check_str("12", &yaml, &AppOptions::default()).unwrap();
    let m = &report
        .findings
        .iter()
        .find(|f| f.rule == "PROBE-001")
        .unwrap()
        .message;
    for part in [
        "same endpoint as readiness",
        "timeoutSeconds 1",
        "no startupProbe",
        "readiness failureThreshold 1",
    ] {
        assert!(m.contains(part), "missing {part:?} in {m}");
    }
}

#[test]
fn c14_missing_prestop() {
    case(
        "14-missing-prestop.yaml",
        &[("TERM-001", Error)],
        &["TERM-002"],
    );
}

#[test]
fn c17_retry_non_idempotent() {
    case(
        "17-retry-non-idempotent.yaml",
        &[
            ("RETRY-001", Error),
            ("RETRY-001", Error),
            ("RETRY-002", Info),
        ],
        &[],
    );
}

#[test]
fn c19_gcp_front() {
    case(
        "19-gcp-gfe-in-front-keepalive.yaml",
        &[("KA-002", Error)],
        &["KA-001"],
    );
    let yaml = common::read("ingress/19-gcp-gfe-in-front-keepalive.yaml");
    let report = check_str("19", &yaml, &AppOptions::default()).unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.rule == "KA-002" && f.fix.contains("keep-alive: \"620\""))
    );
}

#[test]
fn c20_axum_no_timer() {
    case(
        "20-good-axum-no-timer.yaml",
        &[("KA-004", Info)],
        &["KA-001", "KA-003"],
    );
}

#[test]
fn folder_input_reads_every_case() {
    let docs = wagate_doctor::manifests::load::load_paths(&[common::testdata("ingress")]).unwrap();
    // 10 cases x 5 documents (profile, ConfigMap, Ingress, Service, Deployment).
    assert_eq!(docs.len(), 10 * 5, "{}", docs.len());
}
