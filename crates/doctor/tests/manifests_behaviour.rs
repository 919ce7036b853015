//! Manifest linter behaviour beyond the shared cases: app-settings sources, value validation,
//! ConfigMap placement, output formats.

mod common;

use wagate_doctor::manifests::kb::FrontLb;
use wagate_doctor::manifests::{AppOptions, check_str};
use wagate_doctor::output;

/// Case 01 without its DoctorAppProfile document.
fn baseline_without_profile() -> String {
    let yaml = common::read("ingress/01-good-baseline.yaml");
    yaml.split("\n---\n")
        .filter(|d| !d.contains("kind: DoctorAppProfile"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn rules(yaml: &str, opts: &AppOptions) -> Vec<&'static str> {
    check_str("t", yaml, opts)
        .unwrap()
        .findings
        .iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn wagate_defaults_are_assumed_and_said() {
    let yaml = baseline_without_profile();
    let report = check_str("t", &yaml, &AppOptions::default()).unwrap();
    assert!(report.app.assumed_defaults);
    assert!(output::text::render(&report).contains("Assuming wagate's defaults"));
    // wagate: idle 75 s > 50 s, 4 MiB >= 3 MiB, ack 5 s << 30 s read, preStop 10 + drain 30 < 45.
    let r: Vec<_> = report.findings.iter().map(|f| f.rule).collect();
    assert_eq!(r, vec!["DEP-001"], "{r:?}");
}

#[test]
fn app_config_toml_is_read() {
    let yaml = baseline_without_profile();
    let toml = "[server]\nidle_timeout = \"30s\"\nmax_body = \"1MiB\"\nlisten = \"0.0.0.0:8080\"\n[shutdown]\ndrain_delay = \"5s\"\n";
    let opts = AppOptions {
        app_config: Some(("wagate.toml".into(), toml.into())),
        ..AppOptions::default()
    };
    let report = check_str("t", &yaml, &opts).unwrap();
    assert!(!report.app.assumed_defaults);
    let ka = report
        .findings
        .iter()
        .find(|f| f.rule == "KA-001")
        .expect("KA-001");
    assert!(
        ka.effective.contains("wagate.toml server.idle_timeout"),
        "{}",
        ka.effective
    );
    assert!(report.findings.iter().any(|f| f.rule == "BODY-002"));
}

#[test]
fn deployment_env_is_honoured_and_flags_win() {
    let yaml = baseline_without_profile().replace(
        "          lifecycle:",
        "          env:\n            - name: WAGATE_SERVER__IDLE_TIMEOUT\n              value: \"52s\"\n          lifecycle:",
    );
    assert!(
        rules(&yaml, &AppOptions::default()).contains(&"KA-003"),
        "52 s vs 50 s proxy: {:?}",
        rules(&yaml, &AppOptions::default())
    );
    let flags = AppOptions {
        idle_timeout: Some(Some(std::time::Duration::from_secs(90))),
        ..AppOptions::default()
    };
    assert!(!rules(&yaml, &flags).iter().any(|r| r.starts_with("KA-")));
}

#[test]
fn app_server_defaults() {
    let yaml = baseline_without_profile();
    let node = AppOptions {
        server: Some("node".into()),
        ..AppOptions::default()
    };
    let r = rules(&yaml, &node);
    assert!(r.contains(&"KA-001"), "node 5 s keep-alive: {r:?}");
    assert!(
        r.contains(&"TO-002"),
        "node requestTimeout 300 s > 30 s: {r:?}"
    );
    let axum = AppOptions {
        server: Some("axum".into()),
        ..AppOptions::default()
    };
    let r = rules(&yaml, &axum);
    assert!(r.contains(&"KA-004") && r.contains(&"BODY-002"), "{r:?}");
}

#[test]
fn front_lb_flag() {
    let yaml = baseline_without_profile();
    let gcp = AppOptions {
        front_lb: Some(FrontLb::Gcp),
        ..AppOptions::default()
    };
    assert!(rules(&yaml, &gcp).contains(&"KA-002"));
    let alb = AppOptions {
        front_lb: Some(FrontLb::Alb),
        ..AppOptions::default()
    };
    assert!(
        !rules(&yaml, &alb).contains(&"KA-002"),
        "ALB 60 s < nginx keep-alive 75 s is fine"
    );
}

#[test]
fn invalid_and_unquoted_annotation_values() {
    let yaml = common::read("ingress/01-good-baseline.yaml")
        .replace("proxy-read-timeout: \"30\"", "proxy-read-timeout: \"120s\"")
        .replace("proxy-connect-timeout: \"5\"", "proxy-connect-timeout: 5");
    let report = check_str("t", &yaml, &AppOptions::default()).unwrap();
    let ann2: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "ANN-002")
        .collect();
    assert_eq!(ann2.len(), 2, "{ann2:?}");
    assert!(
        ann2.iter()
            .any(|f| f.message.contains("\"120s\"") && f.message.contains("60 (default)"))
    );
    assert!(ann2.iter().any(|f| f.message.contains("must be strings")));
}

#[test]
fn configmap_annotations_and_unknown_keys() {
    let yaml = common::read("ingress/01-good-baseline.yaml").replace(
        "  namespace: ingress-nginx\ndata:\n",
        "  namespace: ingress-nginx\n  annotations:\n    nginx.ingress.kubernetes.io/proxy-body-size: \"10m\"\ndata:\n  keepalive-timeout: \"50\"\n",
    );
    let r = rules(&yaml, &AppOptions::default());
    assert!(r.contains(&"CM-001") && r.contains(&"CM-002"), "{r:?}");
}

#[test]
fn foreign_prefix_and_prestop_hook() {
    let yaml = common::read("ingress/01-good-baseline.yaml")
        .replace("    nginx.ingress.kubernetes.io/proxy-body-size: \"4m\"", "    nginx.ingress.kubernetes.io/proxy-body-size: \"4m\"\n    nginx.org/client-max-body-size: \"4m\"")
        .replace("            preStop:\n", "            preStopHook:\n");
    let r = rules(&yaml, &AppOptions::default());
    assert!(r.contains(&"ANN-003"), "{r:?}");
    assert!(r.contains(&"TERM-003"), "{r:?}");
}

#[test]
fn json_and_sarif_shapes() {
    let yaml = common::read("ingress/08-tutorial-nonexistent-annotations.yaml");
    let report = check_str("08.yaml", &yaml, &AppOptions::default()).unwrap();
    let j: serde_json::Value = serde_json::from_str(&output::json::render(&report)).unwrap();
    for f in j["findings"].as_array().unwrap() {
        for k in [
            "rule",
            "severity",
            "object",
            "path",
            "effective",
            "message",
            "fix",
        ] {
            assert!(
                f.get(k).is_some_and(|v| v.is_string()),
                "{k} missing in {f}"
            );
        }
    }
    let s: serde_json::Value = serde_json::from_str(&output::sarif::render(&report)).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    let rule_ids: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    for r in results {
        assert!(rule_ids.contains(&r["ruleId"].as_str().unwrap()));
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(r["message"]["text"].is_string());
    }
    let ann = results.iter().find(|r| r["ruleId"] == "ANN-001").unwrap();
    let loc = &ann["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "08.yaml");
    let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
    assert!(
        yaml.lines()
            .nth(line - 1)
            .unwrap()
            .contains("nginx.ingress.kubernetes.io/"),
        "line {line}"
    );
}

#[test]
fn bad_yaml_is_an_input_error() {
    assert!(check_str("t", "kind: Ingress\nmetadata: [\n", &AppOptions::default()).is_err());
}
