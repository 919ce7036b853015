//! Every corpus payload, signed and POSTed over a real socket, is acknowledged and stored
//! byte-identical; oversized bodies get 413 over the wire.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_payload_is_acknowledged_and_stored_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Wagate::start_in(dir.path(), &config_text(dir.path(), "", ""));
    let client = client(4);
    let payloads = payloads();
    assert!(payloads.len() >= 60, "corpus present");
    let mut ids = Vec::new();
    for (name, body) in &payloads {
        let resp = post_signed(&client, &gw.url(), body.clone()).await.unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    let stored = gw.export();
    assert_eq!(stored.len(), payloads.len());
    for ((name, body), (line, id)) in payloads.iter().zip(stored.iter().zip(&ids)) {
        assert_eq!(line["id"].as_str().unwrap(), id, "{name}: order and id");
        assert_eq!(&decode_body(line), body, "{name}: byte-identical");
        assert_eq!(line["source"], "meta");
        assert_eq!(line["valid_json"], true, "{name}");
        assert_eq!(
            line["signature"].as_str().unwrap(),
            format!("x-hub-signature-256: {}", sign(body))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_gets_413_over_the_wire_and_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Wagate::start_in(
        dir.path(),
        &config_text(dir.path(), r#"max_body = "1MiB""#, ""),
    );
    let client = client(1);
    let big =
        std::fs::read(payloads_dir().join("cloud_batch_oversize_1000_messages_over_1mib.json"))
            .unwrap();
    assert!(big.len() > 1 << 20);
    let resp = post_signed(&client, &gw.url(), big).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["connection"], "close");
    let small = std::fs::read(payloads_dir().join("cloud_msg_text.json")).unwrap();
    assert_eq!(
        post_signed(&client, &gw.url(), small)
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = client.post(gw.url()).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(gw.export().len(), 1);
}
