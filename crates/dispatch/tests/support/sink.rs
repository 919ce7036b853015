//! A real HTTP sink on 127.0.0.1:0 for delivery tests: answers as a behaviour function says
//! (2xx, error statuses, slow answers, connection resets) and checks that every conversation
//! receives its messages in sequence.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// What the sink does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// 200, and the messages count as delivered.
    Ok,
    /// This status (with `Retry-After` seconds when given); not delivered.
    Status(u16, Option<u64>),
    /// Wait this long, then 500 (the client has timed out by then).
    Slow(Duration),
    /// Close the connection without an answer.
    Reset,
}

/// One received request.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

pub type Behaviour = Arc<dyn Fn(&Received, u64) -> Action + Send + Sync>;
/// Extracts `(conversation, sequence)` pairs from a body.
pub type Keys = fn(&[u8]) -> Vec<(String, u64)>;

pub struct State {
    behaviour: Mutex<Behaviour>,
    keys: Keys,
    last: Mutex<HashMap<String, u64>>,
    /// Requests received (attempts).
    pub attempts: AtomicU64,
    /// Messages acknowledged in sequence.
    pub delivered: AtomicU64,
    /// Messages acknowledged again (seq not above the last one).
    pub duplicates: AtomicU64,
    /// Gaps: a seq above last + 1.
    pub order_errors: Mutex<Vec<String>>,
    /// Every request acknowledged with 200.
    pub accepted: Mutex<Vec<Received>>,
    /// Every request, whatever the answer.
    pub all: Mutex<Vec<Received>>,
}

pub struct Sink {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl Sink {
    pub async fn start(keys: Keys, behaviour: Behaviour) -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            behaviour: Mutex::new(behaviour),
            keys,
            last: Mutex::default(),
            attempts: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            order_errors: Mutex::default(),
            accepted: Mutex::default(),
            all: Mutex::default(),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Sink { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    pub fn attempts(&self) -> u64 {
        self.state.attempts.load(Ordering::SeqCst)
    }
    pub fn delivered(&self) -> u64 {
        self.state.delivered.load(Ordering::SeqCst)
    }
    pub fn duplicates(&self) -> u64 {
        self.state.duplicates.load(Ordering::SeqCst)
    }
    pub fn order_errors(&self) -> Vec<String> {
        self.state.order_errors.lock().unwrap().clone()
    }

    /// Waits until `delivered() >= n` or `timeout`; returns whether it got there.
    pub async fn wait_delivered(&self, n: u64, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < end {
            if self.delivered() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.delivered() >= n
    }
}

#[derive(Debug)]
struct Reset;
impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset on purpose")
    }
}
impl std::error::Error for Reset {}

async fn handle(
    st: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Reset> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Reset)?.to_bytes();
    let received = Received {
        headers: parts.headers,
        body,
    };
    let n = st.attempts.fetch_add(1, Ordering::SeqCst) + 1;
    st.all.lock().unwrap().push(received.clone());
    let behaviour = st.behaviour.lock().unwrap().clone();
    let status = match behaviour(&received, n) {
        Action::Ok => {
            let mut last = st.last.lock().unwrap();
            for (conv, seq) in (st.keys)(&received.body) {
                let l = last.entry(conv.clone()).or_insert(0);
                if seq == *l + 1 {
                    *l = seq;
                    st.delivered.fetch_add(1, Ordering::SeqCst);
                } else if seq <= *l {
                    st.duplicates.fetch_add(1, Ordering::SeqCst);
                } else {
                    st.order_errors
                        .lock()
                        .unwrap()
                        .push(format!("{conv}: got {seq} after {l}"));
                }
            }
            drop(last);
            st.accepted.lock().unwrap().push(received);
            return Ok(Response::new(Full::new(Bytes::from_static(b"ok"))));
        }
        Action::Status(s, retry_after) => {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"no")));
            *resp.status_mut() = http::StatusCode::from_u16(s).unwrap();
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return Ok(resp);
        }
        Action::Slow(d) => {
            tokio::time::sleep(d).await;
            500
        }
        Action::Reset => return Err(Reset),
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
    Ok(resp)
}

/// Meta body with text messages `(from, seq)`: message id `wamid.<from>.<seq>`, text `seq`.
pub fn meta_body(messages: &[(u64, u64)]) -> Vec<u8> {
    let msgs: Vec<String> = messages
        .iter()
        .map(|(from, seq)| {
            format!(
                r#"{{"from":"{from}","id":"wamid.{from}.{seq}","timestamp":"1767225600","type":"text","text":{{"body":"{seq}"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000000","phone_number_id":"101"}},"messages":[{}]}}}}]}}]}}"#,
        msgs.join(",")
    )
    .into_bytes()
}

/// Keys of an `events`-mode body: the event's conversation and its text as the sequence.
pub fn event_keys(body: &[u8]) -> Vec<(String, u64)> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let seq = v["payload"]["text"]["body"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    vec![(v["conversation_key"].as_str().unwrap().to_owned(), seq)]
}

/// Keys of a `raw`-mode body (a Meta body from [`meta_body`]).
pub fn raw_keys(body: &[u8]) -> Vec<(String, u64)> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["entry"][0]["changes"][0]["value"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                format!("101:{}", m["from"].as_str().unwrap()),
                m["text"]["body"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}
