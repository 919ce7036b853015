//! DEP-001: ingress-nginx is retired (proxies.md 1.1).

use super::{Ctx, F};
use crate::finding::Severity;

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    if !inv.uses_ingress_nginx() {
        return;
    }
    let doc = inv
        .controller
        .as_ref()
        .map(|c| c.doc)
        .or(inv.controller_cm)
        .or_else(|| inv.nginx_ingresses().first().copied());
    ctx.push(F {
        rule: "DEP-001",
        severity: Severity::Info,
        doc,
        object: "ingress-nginx".into(),
        path: "-".into(),
        needle: String::new(),
        effective: "ingress-nginx (kubernetes/ingress-nginx)".into(),
        message: "the ingress-nginx project is retired: no releases, bug fixes or security fixes after March 2026".into(),
        fix: "plan a move to a Gateway API implementation (e.g. Envoy Gateway, Istio, NGINX Gateway Fabric, Traefik, HAProxy, Cilium, Kong); the keep-alive rules apply unchanged".into(),
    });
}
