//! Admin listener: `/healthz` (process alive), `/readyz` (journal writable and not draining),
//! `/metrics` (Prometheus text). It runs on its own thread and runtime so probes answer quickly
//! even while the public listener is saturated.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use wagate_journal::Journal;

use crate::server::drain::Drain;

/// Longest `/readyz` waits for the journal before calling it not ready.
const HEALTH_BUDGET: Duration = Duration::from_millis(40);

/// What the admin routes look at.
#[derive(Clone)]
pub struct AdminState {
    /// The journal whose health decides readiness.
    pub journal: Arc<dyn Journal>,
    /// Drain state.
    pub drain: Drain,
    /// Standing warnings reported by `/readyz` (e.g. `insecure_skip_signature`).
    pub warnings: Arc<Vec<String>>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8") }),
        )
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async {
                text(
                    StatusCode::OK,
                    crate::telemetry::render(),
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            }),
        )
        .with_state(state)
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `200 {"status":"ready",...}` or `503 {"status":"not_ready","reasons":[...]}`.
async fn readyz(State(state): State<AdminState>) -> Response {
    let mut reasons = Vec::new();
    if state.drain.is_draining() {
        reasons.push("draining".to_owned());
    }
    match tokio::time::timeout(HEALTH_BUDGET, state.journal.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => reasons.push(format!("journal: {e}")),
        Err(_) => reasons.push(format!(
            "journal: health check slower than {} ms",
            HEALTH_BUDGET.as_millis()
        )),
    }
    let ready = reasons.is_empty();
    let mut warnings = (*state.warnings).clone();
    warnings.extend(state.journal.warnings().await);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "reasons": reasons,
        "warnings": warnings,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, format!("{body}\n"), "application/json")
}
