//! `/metrics` in the Prometheus text format, with kube-apiserver's names for what both have.
//!
//! Labels are only ever verbs, API groups, resources, subresources, status codes and fixed
//! words — never object names, users or anything from a request body — so no value can reach a
//! scrape. Labels are taken only from closed sets (the verbs Kubernetes knows, the resources and
//! subresources this server serves): a request for `/apis/x<random>/…` or with an invented
//! method counts under empty or `OTHER` labels, so no client can grow the series without bound.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The labels of one `apiserver_request_total` series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKey {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    code: u16,
}

/// The verbs counted under their own name; anything else is `OTHER`.
const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "head",
    "options",
    "post",
    "put",
];

#[derive(Debug, Default)]
pub struct Metrics {
    /// The (group, resource, subresources) served, the only resource labels recorded.
    served: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    authn_success: AtomicU64,
    authn_failure: AtomicU64,
    audit_events: AtomicU64,
    audit_errors: AtomicU64,
}

impl Metrics {
    /// Metrics for a server serving `served` resources.
    pub fn new<'a>(served: impl IntoIterator<Item = &'a crate::registry::ResourceInfo>) -> Metrics {
        let served = served
            .into_iter()
            .map(|i| (i.group, i.plural, crate::discovery::subresources(i).iter().map(|s| s.name).collect()))
            .collect();
        Metrics { served, ..Metrics::default() }
    }

    /// Counts a finished request. `resource` is empty for non-resource requests; a resource or
    /// subresource this server does not serve is counted with empty resource labels.
    pub fn request(&self, verb: &str, group: &str, resource: &str, subresource: &str, code: u16) {
        let verb = verb.to_ascii_lowercase();
        let verb = if VERBS.contains(&verb.as_str()) { verb.to_ascii_uppercase() } else { "OTHER".to_string() };
        let served = self.served.iter().find(|(g, r, _)| *g == group && *r == resource);
        let (group, resource, subresource) = match served {
            Some((g, r, _)) if subresource.is_empty() => (*g, *r, ""),
            Some((g, r, subs)) => match subs.iter().find(|s| **s == subresource) {
                Some(s) => (*g, *r, *s),
                None => ("", "", ""),
            },
            None => ("", "", ""),
        };
        let key = RequestKey {
            verb,
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            code,
        };
        *self.requests.lock().expect("metrics lock").entry(key).or_default() += 1;
    }

    pub fn authentication(&self, ok: bool) {
        let counter = if ok { &self.authn_success } else { &self.authn_failure };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn audit_event(&self, written: bool) {
        let counter = if written { &self.audit_events } else { &self.audit_errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `inflight` is (read-only, mutating) requests in flight now.
    pub fn render(&self, inflight: (usize, usize), watches: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, API resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for (k, n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{}\",group=\"{}\",resource=\"{}\",subresource=\"{}\",verb=\"{}\"}} {n}",
                k.code,
                escape(&k.group),
                escape(&k.resource),
                escape(&k.subresource),
                escape(&k.verb)
            );
        }
        out.push_str("# HELP apiserver_current_inflight_requests Maximal number of currently used inflight request limit of this apiserver per request kind.\n# TYPE apiserver_current_inflight_requests gauge\n");
        let _ = writeln!(out, "apiserver_current_inflight_requests{{request_kind=\"mutating\"}} {}", inflight.1);
        let _ = writeln!(out, "apiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {}", inflight.0);
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests.\n# TYPE apiserver_longrunning_requests gauge\n");
        let _ = writeln!(out, "apiserver_longrunning_requests{{verb=\"WATCH\"}} {watches}");
        out.push_str("# HELP authentication_attempts Counter of authenticated attempts.\n# TYPE authentication_attempts counter\n");
        let _ =
            writeln!(out, "authentication_attempts{{result=\"error\"}} {}", self.authn_failure.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "authentication_attempts{{result=\"success\"}} {}",
            self.authn_success.load(Ordering::Relaxed)
        );
        out.push_str("# HELP apiserver_audit_event_total Counter of audit events generated and sent to the audit backend.\n# TYPE apiserver_audit_event_total counter\n");
        let _ = writeln!(out, "apiserver_audit_event_total {}", self.audit_events.load(Ordering::Relaxed));
        out.push_str("# HELP apiserver_audit_error_total Counter of audit events that failed to be audited properly.\n# TYPE apiserver_audit_error_total counter\n");
        let _ = writeln!(out, "apiserver_audit_error_total {}", self.audit_errors.load(Ordering::Relaxed));
        out
    }
}

/// Prometheus label-value escaping (backslash, quote, newline).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Metrics {
        Metrics::new(crate::registry::Registry::new(crate::registry::secret::DigestKey::new([7; 32])).infos())
    }

    #[test]
    fn renders_counters_and_gauges() {
        let m = served();
        m.request("get", "", "secrets", "", 200);
        m.request("get", "", "secrets", "", 200);
        m.request("create", "", "serviceaccounts", "token", 201);
        m.authentication(true);
        m.authentication(false);
        m.audit_event(true);
        let text = m.render((3, 1), 2);
        assert!(text.contains(
            "apiserver_request_total{code=\"200\",group=\"\",resource=\"secrets\",subresource=\"\",verb=\"GET\"} 2\n"
        ));
        assert!(text.contains("subresource=\"token\",verb=\"CREATE\"} 1\n"));
        assert!(text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 3\n"));
        assert!(text.contains("authentication_attempts{result=\"error\"} 1\n"));
        assert!(text.contains("apiserver_audit_event_total 1\n"));
    }

    /// Labels come from closed sets: unknown groups, resources, subresources and methods do not
    /// make new series.
    #[test]
    fn labels_are_bounded() {
        let m = served();
        for i in 0..100 {
            m.request("get", &format!("x{i}.example.com"), "widgets", "", 404);
            m.request("get", "", &format!("secret{i}"), "", 404);
            m.request("create", "", "secrets", &format!("sub{i}"), 404);
            m.request(&format!("frob{i}"), "", "secrets", "", 405);
        }
        m.request("get", "rbac.authorization.k8s.io", "roles", "", 200);
        let text = m.render((0, 0), 0);
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with("apiserver_request_total{")).collect();
        assert_eq!(
            series,
            [
                "apiserver_request_total{code=\"404\",group=\"\",resource=\"\",subresource=\"\",verb=\"CREATE\"} 100",
                "apiserver_request_total{code=\"404\",group=\"\",resource=\"\",subresource=\"\",verb=\"GET\"} 200",
                "apiserver_request_total{code=\"200\",group=\"rbac.authorization.k8s.io\",resource=\"roles\",subresource=\"\",verb=\"GET\"} 1",
                "apiserver_request_total{code=\"405\",group=\"\",resource=\"secrets\",subresource=\"\",verb=\"OTHER\"} 100",
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
