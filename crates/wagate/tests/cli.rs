//! The binary's operator commands: config printing and errors, doctor on our own manifests.

mod common;

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

#[test]
fn an_invalid_log_level_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    std::fs::write(
        &cfg,
        common::config_text(dir.path(), "", "").replace("level = \"info\"", "level = \"loud\""),
    )
    .unwrap();
    let out = wagate(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.level"));
}

#[test]
fn a_second_dispatcher_on_the_same_journal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let target = "[[targets]]\nname = \"app\"\nurl = \"http://127.0.0.1:9/webhook\"\nmode = \"events\"\nsecret = \"s\"\n";
    let config = common::config_text(dir.path(), "", target);
    let _first = common::Wagate::start_in(dir.path(), &config);
    let out = wagate(&[
        "serve",
        "--config",
        dir.path().join("wagate.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another wagate process already dispatches"),
        "{err}"
    );
    // Ingest-only instances may share the file.
    let second_dir = tempfile::tempdir().unwrap();
    let ingest_cfg = second_dir.path().join("ingest.toml");
    std::fs::write(&ingest_cfg, &config).unwrap();
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "serve",
            "--role",
            "ingest",
            "--config",
            ingest_cfg.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        ingest.try_wait().unwrap().is_none(),
        "ingest-only instance runs"
    );
    let _ = ingest.kill();
    let _ = ingest.wait();
}
