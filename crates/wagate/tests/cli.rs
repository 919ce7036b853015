//! The binary's operator commands: config printing and errors, doctor on our own manifests.

use std::path::Path;
use std::process::Command;

fn wagate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn config_print_masks_secrets_and_applies_env() {
    let out = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["config", "print", "--config", "examples/wagate.toml"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("WAGATE_SERVER__IDLE_TIMEOUT", "90s")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("idle_timeout = \"1m 30s\""), "{text}");
    assert!(text.contains("app_secrets = [\"***\"]"), "{text}");
    assert!(
        !text.contains("test_app_secret") && !text.contains("test-verify-token"),
        "{text}"
    );
}

#[test]
fn unknown_keys_and_bad_values_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nidle_timout = \"3s\"\n").unwrap();
    let out = wagate(&["config", "print", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("idle_timout"), "{err}");
    std::fs::write(&bad, "[server]\nmax_body = \"lots\"\n").unwrap();
    let out = wagate(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.max_body"));
    // The default Meta source has no credentials: refuse to start rather than accept unsigned webhooks.
    let out = wagate(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sources[0].verify_token"));
}

#[test]
fn doctor_finds_no_error_in_our_own_example_manifests() {
    let out = wagate(&[
        "doctor",
        "manifests",
        "deploy/kubernetes",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .all(|f| f["severity"] != "error" && f["severity"] != "warn"),
        "{findings:?}"
    );
}
