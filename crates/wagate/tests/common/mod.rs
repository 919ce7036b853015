//! Shared helpers of the end-to-end tests: run the real `wagate` binary on loopback with a
//! temporary config and journal, sign payloads like Meta, talk over real sockets.
#![allow(dead_code)]

pub mod nginx;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "test_app_secret";
pub const TOKEN: &str = "test-verify-token";

/// The payload corpus copied into the repository.
pub fn payloads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/payloads")
}

/// Every `*.json` payload file, sorted by name.
pub fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(payloads_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

pub fn sign(body: &[u8]) -> String {
    wagate_verify::meta::sign(SECRET.as_bytes(), body)
}

/// A running `wagate serve` child process.
pub struct Wagate {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Config text for a test instance; `extra_server` lines go into `[server]`.
pub fn config_text(dir: &Path, extra_server: &str, extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{extra_server}

[shutdown]
drain_delay = "1s"
timeout = "5s"

[journal]
path = "{journal}"

[log]
format = "json"
level = "info"

[[sources]]
name = "meta"
path = "/webhook"
provider = "meta"
verify_token = "{TOKEN}"
app_secrets = ["{SECRET}"]
{extra}
"#,
        journal = dir.join("wagate.db").display()
    )
}

impl Wagate {
    /// Starts `wagate serve` in `dir` with `config` and waits until it listens.
    pub fn start_in(dir: &Path, config: &str) -> Wagate {
        let config_path = dir.join("wagate.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wagate");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("wagate started") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send((
                        v["webhook"]
                            .as_str()
                            .unwrap()
                            .parse::<SocketAddr>()
                            .unwrap(),
                        v["admin"].as_str().unwrap().parse::<SocketAddr>().unwrap(),
                    ));
                }
                log2.lock().unwrap().push(line);
            }
        });
        let (addr, admin) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("wagate did not start: {:?}", log.lock().unwrap())
            });
        Wagate {
            child,
            addr,
            admin,
            dir: dir.to_owned(),
            config: config_path,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: libc::kill on our own child pid.
        unsafe_kill(self.child.id() as i32, sig);
    }

    /// Waits for exit up to `timeout`; returns the exit status.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Every stored request as `wagate journal export` prints it.
    pub fn export(&self) -> Vec<serde_json::Value> {
        export(&self.config)
    }
}

impl Drop for Wagate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn export(config: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["journal", "export", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn unsafe_kill(pid: i32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn decode_body(line: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(line["body"].as_str().unwrap())
        .unwrap()
}

/// A keep-alive HTTP client like a proxy's (no TLS, no proxy).
pub fn client(pool: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    let sig = sign(&body);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
}
