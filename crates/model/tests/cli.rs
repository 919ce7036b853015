//! `wagate inspect` behaviour: NDJSON and table output, exit statuses.

mod common;

use std::path::PathBuf;

use common::*;
use wagate_model::cli::{Format, InspectArgs, inspect};

fn run(files: Vec<PathBuf>, format: Format) -> (u8, String, String) {
    let args = InspectArgs {
        files,
        format,
        provider: None,
        source: "cli".into(),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = inspect(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn ndjson_one_line_per_event() {
    let (code, out, err) = run(
        vec![
            corpus_dir().join("cloud_batch_multi_message_one_change.json"),
            corpus_dir().join("wasender_messages_upsert_text.json"),
        ],
        Format::Ndjson,
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["provider"], "meta");
    assert_eq!(lines[3]["provider"], "wasender");
    assert_eq!(
        lines[3]["dedupe_key"],
        "wasender:messages.upsert:3EB041A64F21ADDE707E"
    );
    // The payload is the element's own JSON, as received.
    assert!(
        lines[0]["payload"]["id"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
}

#[test]
fn not_json_prints_invalid_and_succeeds() {
    let dir = std::env::temp_dir().join(format!("wagate-model-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("broken.json");
    std::fs::write(&f, b"{\"object\": \"whatsapp_business_acc").unwrap();
    let (code, out, _) = run(vec![f], Format::Ndjson);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "invalid");
    assert!(v["reason"].as_str().unwrap().contains("not valid JSON"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreadable_path_exits_2_but_prints_the_rest() {
    let missing = corpus_dir().join("does_not_exist.json");
    let (code, out, err) = run(
        vec![missing, corpus_dir().join("cloud_msg_text.json")],
        Format::Table,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read") && err.contains("does_not_exist.json"),
        "{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "header + one event: {out}");
    assert!(lines[0].starts_with("KIND"));
    assert!(lines[1].starts_with("message") && lines[1].contains("msg:wamid."));
}
