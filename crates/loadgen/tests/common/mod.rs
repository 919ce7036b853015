//! A small real webhook receiver for the tests: verifies Meta signatures, counts what arrives and
//! can misbehave on purpose (500s, first-delivery failures, idle keep-alive closes).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub const SECRET: &str = "test_app_secret";

/// How the server misbehaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Answer 500 to every n-th request (1-based count over all requests).
    pub fail_every: Option<u64>,
    /// Answer 500 the first time a body is seen (by hash), 200 for repeats.
    pub fail_first_sight: bool,
    /// A request arriving on a connection idle for longer than this gets no response: the
    /// connection is dropped, as if the server's close raced the client's reuse.
    pub stale_after: Option<Duration>,
    /// Close (FIN) connections idle for longer than this, like a keep-alive timeout.
    pub close_idle_after: Option<Duration>,
}

#[derive(Default, Debug)]
pub struct Counts {
    pub requests: u64,
    pub ok: u64,
    pub bad_signature: u64,
    pub messages: u64,
    pub statuses: u64,
    pub message_ids: HashSet<String>,
    pub bodies: HashMap<Vec<u8>, u32>,
    pub dropped_stale: u64,
    pub connections: u64,
}

pub struct Server {
    pub addr: SocketAddr,
    pub counts: Arc<Mutex<Counts>>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }
    pub fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap()
    }
}

fn count_items(v: &serde_json::Value, c: &mut Counts) {
    for entry in v["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            for m in change["value"]["messages"].as_array().into_iter().flatten() {
                c.messages += 1;
                c.message_ids
                    .insert(m["id"].as_str().unwrap_or_default().to_owned());
            }
            c.statuses += change["value"]["statuses"]
                .as_array()
                .map_or(0, |a| a.len() as u64);
        }
    }
}

/// Starts the server on 127.0.0.1:0 in the current tokio runtime.
pub async fn start(behaviour: Behaviour) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let shared = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            shared.lock().unwrap().connections += 1;
            let counts = Arc::clone(&shared);
            let behaviour = behaviour.clone();
            tokio::spawn(serve(stream, counts, behaviour));
        }
    });
    Server { addr, counts }
}

async fn serve(stream: tokio::net::TcpStream, counts: Arc<Mutex<Counts>>, b: Behaviour) {
    // Time the connection last finished a response (or was accepted), and requests in flight.
    let last = Arc::new(Mutex::new((Instant::now(), 0u32)));
    let svc_last = Arc::clone(&last);
    let svc_counts = Arc::clone(&counts);
    let svc_b = b.clone();
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let last = Arc::clone(&svc_last);
        let counts = Arc::clone(&svc_counts);
        let b = svc_b.clone();
        async move {
            let idle = {
                let mut l = last.lock().unwrap();
                l.1 += 1;
                l.0.elapsed()
            };
            if b.stale_after.is_some_and(|t| idle > t) {
                counts.lock().unwrap().dropped_stale += 1;
                // An error from the service makes hyper drop the connection without a response.
                return Err::<Response<Full<Bytes>>, std::io::Error>(std::io::Error::other(
                    "stale",
                ));
            }
            let sig = req
                .headers()
                .get("x-hub-signature-256")
                .map(|v| v.as_bytes().to_vec());
            let body = req
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            let code = {
                let mut c = counts.lock().unwrap();
                c.requests += 1;
                let n = c.requests;
                let seen = c.bodies.entry(body.to_vec()).or_default();
                *seen += 1;
                let first = *seen == 1;
                if wagate_verify::meta::verify(sig.as_deref(), &body, &[SECRET]).is_err() {
                    c.bad_signature += 1;
                    401
                } else if b.fail_every.is_some_and(|k| n.is_multiple_of(k))
                    || (b.fail_first_sight && first)
                {
                    500
                } else {
                    c.ok += 1;
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                        count_items(&v, &mut c);
                    }
                    200
                }
            };
            {
                let mut l = last.lock().unwrap();
                l.0 = Instant::now();
                l.1 -= 1;
            }
            Ok(Response::builder()
                .status(code)
                .body(Full::new(Bytes::from_static(b"ok")))
                .unwrap())
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let Some(close_after) = b.close_idle_after else {
        let _ = conn.await;
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = &mut conn => return,
            _ = tick.tick() => {
                let (at, in_flight) = *last.lock().unwrap();
                if in_flight == 0 && at.elapsed() > close_after {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    return;
                }
            }
        }
    }
}
