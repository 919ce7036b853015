//! The objects the rules look at, sorted out of the loaded documents: ingress-nginx controller
//! (Deployment args, ConfigMap), Ingresses, Services, app workloads, HPAs, Istio and Traefik
//! objects.

use serde_json::{Map, Value};

use super::kb;
use super::load::{Document, scalar_text};

/// Which ingress controller runs the `nginx` class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerKind {
    /// kubernetes/ingress-nginx (`nginx.ingress.kubernetes.io/` annotations).
    IngressNginx,
    /// NGINX Inc's `nginx/kubernetes-ingress` (`nginx.org/` annotations).
    NginxInc,
}

/// The controller Deployment/DaemonSet, when present in the input.
#[derive(Debug, Clone)]
pub struct Controller<'a> {
    /// Its document.
    pub doc: &'a Document,
    /// Which controller.
    pub kind: ControllerKind,
    /// `--annotations-prefix` (default `nginx.ingress.kubernetes.io`).
    pub annotations_prefix: String,
    /// `--configmap=<ns>/<name>`.
    pub configmap: Option<String>,
}

/// Everything the rules need, borrowed from the documents.
#[derive(Debug, Default)]
pub struct Inventory<'a> {
    /// `DoctorAppProfile` documents (the first one is used).
    pub profiles: Vec<&'a Document>,
    /// Every ConfigMap.
    pub config_maps: Vec<&'a Document>,
    /// The ingress-nginx controller ConfigMap, if identified.
    pub controller_cm: Option<&'a Document>,
    /// The controller workload, if present.
    pub controller: Option<Controller<'a>>,
    /// Ingresses (any class).
    pub ingresses: Vec<&'a Document>,
    /// Services.
    pub services: Vec<&'a Document>,
    /// Deployments, StatefulSets and DaemonSets except the controller.
    pub workloads: Vec<&'a Document>,
    /// HorizontalPodAutoscalers.
    pub hpas: Vec<&'a Document>,
    /// Istio DestinationRules.
    pub destination_rules: Vec<&'a Document>,
    /// Istio VirtualServices.
    pub virtual_services: Vec<&'a Document>,
    /// Traefik ServersTransports.
    pub servers_transports: Vec<&'a Document>,
}

/// Container args of a pod template, flattened (`args` then `command`).
fn container_args(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    for c in containers(doc) {
        for key in ["command", "args"] {
            if let Some(Value::Array(a)) = c.get(key) {
                out.extend(a.iter().filter_map(scalar_text));
            }
        }
    }
    out
}

/// The pod template's containers (Deployment/StatefulSet/DaemonSet/Pod).
pub fn containers(doc: &Document) -> Vec<&Map<String, Value>> {
    pod_spec(doc)
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// The pod spec of a workload (or of a Pod).
pub fn pod_spec(doc: &Document) -> Option<&Map<String, Value>> {
    let v = &doc.value;
    v.pointer("/spec/template/spec")
        .or_else(|| v.pointer("/spec"))
        .and_then(Value::as_object)
}

fn image_of(doc: &Document) -> Vec<String> {
    containers(doc)
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn controller_of(doc: &Document) -> Option<ControllerKind> {
    let args = container_args(doc);
    let images = image_of(doc);
    if images
        .iter()
        .any(|i| i.contains("ingress-nginx/controller"))
        || args.iter().any(|a| a.contains("/nginx-ingress-controller"))
    {
        Some(ControllerKind::IngressNginx)
    } else if images
        .iter()
        .any(|i| i.contains("nginx/nginx-ingress") || i.contains("nginx-plus-ingress"))
    {
        Some(ControllerKind::NginxInc)
    } else {
        None
    }
}

fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let eq = format!("{flag}=");
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix(&eq) {
            return Some(v.to_string());
        }
        if a == flag {
            return args.get(i + 1).cloned();
        }
    }
    None
}

impl<'a> Inventory<'a> {
    /// Sorts documents by kind.
    pub fn build(docs: &'a [Document]) -> Inventory<'a> {
        let mut inv = Inventory::default();
        for d in docs {
            match d.kind() {
                "DoctorAppProfile" => inv.profiles.push(d),
                "ConfigMap" => inv.config_maps.push(d),
                "Ingress" => inv.ingresses.push(d),
                "Service" => inv.services.push(d),
                "HorizontalPodAutoscaler" => inv.hpas.push(d),
                "DestinationRule" => inv.destination_rules.push(d),
                "VirtualService" => inv.virtual_services.push(d),
                "ServersTransport" => inv.servers_transports.push(d),
                "Deployment" | "StatefulSet" | "DaemonSet" => match controller_of(d) {
                    Some(kind) if inv.controller.is_none() => {
                        let args = container_args(d);
                        inv.controller = Some(Controller {
                            doc: d,
                            kind,
                            annotations_prefix: flag_value(&args, "--annotations-prefix")
                                .unwrap_or_else(|| kb::DEFAULT_PREFIX.to_string()),
                            configmap: flag_value(&args, "--configmap"),
                        })
                    }
                    Some(_) => {}
                    None => inv.workloads.push(d),
                },
                _ => {}
            }
        }
        inv.controller_cm = inv.find_controller_cm();
        inv
    }

    fn find_controller_cm(&self) -> Option<&'a Document> {
        if let Some(want) = self.controller.as_ref().and_then(|c| c.configmap.clone()) {
            let (ns, name) = want.split_once('/').unwrap_or(("", want.as_str()));
            if let Some(d) = self
                .config_maps
                .iter()
                .find(|d| d.name() == name && (ns.is_empty() || d.namespace() == ns))
            {
                return Some(d);
            }
        }
        self.config_maps.iter().copied().find(|d| {
            let n = d.name();
            n.ends_with("ingress-nginx-controller")
                || n == "nginx-configuration"
                || n.ends_with("nginx-ingress-controller")
                || n == "ingress-nginx"
        })
    }

    /// The annotation prefix ingress-nginx reads.
    pub fn prefix(&self) -> &str {
        self.controller
            .as_ref()
            .map_or(kb::DEFAULT_PREFIX, |c| c.annotations_prefix.as_str())
    }

    /// Whether an Ingress is served by the nginx class (ingress-nginx or NGINX Inc).
    pub fn is_nginx_class(ing: &Document) -> bool {
        let class = ing
            .value
            .pointer("/spec/ingressClassName")
            .or_else(|| {
                ing.value
                    .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
            })
            .and_then(Value::as_str);
        match class {
            Some(c) => c.contains("nginx"),
            // No class: the default IngressClass; assume nginx when nginx annotations are used.
            None => annotations(ing)
                .keys()
                .any(|k| k.starts_with("nginx.ingress.kubernetes.io/")),
        }
    }

    /// Ingresses served by ingress-nginx (not NGINX Inc's controller).
    pub fn nginx_ingresses(&self) -> Vec<&'a Document> {
        if self
            .controller
            .as_ref()
            .is_some_and(|c| c.kind == ControllerKind::NginxInc)
        {
            return Vec::new();
        }
        self.ingresses
            .iter()
            .copied()
            .filter(|d| Self::is_nginx_class(d))
            .collect()
    }

    /// Whether ingress-nginx is part of the set-up.
    pub fn uses_ingress_nginx(&self) -> bool {
        match &self.controller {
            Some(c) => c.kind == ControllerKind::IngressNginx,
            None => self.controller_cm.is_some() || !self.nginx_ingresses().is_empty(),
        }
    }

    /// The controller ConfigMap's `data`.
    pub fn cm_data(&self) -> Option<&'a Map<String, Value>> {
        self.controller_cm
            .and_then(|d| d.value.get("data"))
            .and_then(Value::as_object)
    }

    /// Workloads that serve an Ingress backend (through a Service selector); all workloads when
    /// no such link exists in the input.
    pub fn app_workloads(&self) -> Vec<&'a Document> {
        let backend_services: Vec<(&str, &str)> = self
            .ingresses
            .iter()
            .flat_map(|ing| {
                let ns = ing.namespace();
                backend_service_names(ing).into_iter().map(move |s| (ns, s))
            })
            .collect();
        let selectors: Vec<(&str, &Map<String, Value>)> = self
            .services
            .iter()
            .filter(|s| {
                backend_services
                    .iter()
                    .any(|(ns, n)| *n == s.name() && *ns == s.namespace())
            })
            .filter_map(|s| {
                s.value
                    .pointer("/spec/selector")
                    .and_then(Value::as_object)
                    .map(|m| (s.namespace(), m))
            })
            .collect();
        let linked: Vec<&'a Document> = self
            .workloads
            .iter()
            .copied()
            .filter(|w| {
                let labels = w
                    .value
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                selectors.iter().any(|(ns, sel)| {
                    *ns == w.namespace()
                        && !sel.is_empty()
                        && labels.is_some_and(|l| sel.iter().all(|(k, v)| l.get(k) == Some(v)))
                })
            })
            .collect();
        if linked.is_empty() {
            self.workloads.clone()
        } else {
            linked
        }
    }
}

/// `metadata.annotations` (empty map when absent).
pub fn annotations(doc: &Document) -> Map<String, Value> {
    doc.value
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Service names referenced by an Ingress (rules and default backend).
pub fn backend_service_names(ing: &Document) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(n) = ing
        .value
        .pointer("/spec/defaultBackend/service/name")
        .and_then(Value::as_str)
    {
        out.push(n);
    }
    for rule in ing
        .value
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p.pointer("/backend/service/name").and_then(Value::as_str) {
                out.push(n);
            }
        }
    }
    out
}

/// The serving containers of a workload with their index: those that declare `ports`, else the
/// first container (sidecars without ports are skipped).
pub fn app_containers(doc: &Document) -> Vec<(usize, &Map<String, Value>)> {
    let all = containers(doc);
    let with_ports: Vec<(usize, &Map<String, Value>)> = all
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| c.get("ports").is_some())
        .collect();
    if with_ports.is_empty() {
        all.into_iter().enumerate().take(1).collect()
    } else {
        with_ports
    }
}
