//! The demo gateway's own log, per Gateway: what a data-plane pod's `kubectl logs` shows in
//! the sandbox (`pods/log`, served by the embedded API server through [`super::deploy`]).
//!
//! Lines are kept in memory, bounded per Gateway; a Gateway's lines go when the Gateway
//! does. Lines about no single Gateway (faults switched in a namespace) are kept apart and
//! shown in every Gateway's log, as one process's log would show them.
//!
//! What is logged: a Gateway reconciled into a new state (listeners, addresses, routes
//! attached, conditions), status writes (Gateway, and HTTPRoutes in the log of each parent
//! Gateway), faults switched on or off, and every request the data plane answers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::Value;

use super::controller::CONTROLLER_NAME;
use super::faults::{FaultMap, Faults};
use super::model::Key;
use super::status::Write;

/// Lines kept per Gateway (and for the lines about none).
const MAX_LINES: usize = 5000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub time: SystemTime,
    pub text: String,
}

impl LogLine {
    /// `2025-01-01T12:00:00.123Z INFO text`, as the process would print it.
    pub fn render(&self) -> String {
        format!(
            "{} {}",
            humantime::format_rfc3339_millis(self.time),
            self.text
        )
    }
}

#[derive(Default)]
struct Inner {
    gateways: HashMap<Key, VecDeque<LogLine>>,
    global: VecDeque<LogLine>,
    /// The last state logged per Gateway: a reconcile that changes nothing logs nothing.
    states: HashMap<Key, String>,
    faults: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct GatewayLog {
    inner: Mutex<Inner>,
}

fn push(q: &mut VecDeque<LogLine>, text: String) {
    if q.len() == MAX_LINES {
        q.pop_front();
    }
    q.push_back(LogLine {
        time: SystemTime::now(),
        text,
    });
}

/// `Accepted=True Programmed=False(Pending)` from a status's conditions.
fn conditions(status: &Value) -> String {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?");
            if s("status") == "True" {
                format!("{}=True", s("type"))
            } else {
                format!("{}={}({})", s("type"), s("status"), s("reason"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_faults(f: &Faults) -> String {
    let mut on = Vec::new();
    if f.stale_status {
        on.push("stale-status".to_string());
    }
    if let Some(d) = f.slow {
        on.push(format!("slow={}", humantime::format_duration(d)));
    }
    if f.fail_closed {
        on.push("fail-closed".to_string());
    }
    if f.hang {
        on.push("hang".to_string());
    }
    if let Some(d) = f.flap {
        on.push(format!("flap={}", humantime::format_duration(d)));
    }
    if on.is_empty() {
        "none".into()
    } else {
        on.join(", ")
    }
}

impl GatewayLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A line about one Gateway.
    pub fn gateway(&self, key: &Key, text: String) {
        let mut inner = self.lock();
        push(inner.gateways.entry(key.clone()).or_default(), text);
    }

    /// A line about no single Gateway (shown in every Gateway's log).
    pub fn global(&self, text: String) {
        push(&mut self.lock().global, text);
    }

    /// A Gateway's lines and the global ones, oldest first, from `since` on.
    pub fn lines(&self, key: &Key, since: Option<SystemTime>) -> Vec<LogLine> {
        let inner = self.lock();
        let mut out: Vec<LogLine> = inner
            .gateways
            .get(key)
            .into_iter()
            .flatten()
            .chain(inner.global.iter())
            .filter(|l| since.is_none_or(|s| l.time >= s))
            .cloned()
            .collect();
        out.sort_by_key(|l| l.time);
        out
    }

    /// Forget Gateways that are gone.
    pub fn retain(&self, gateways: &HashSet<Key>) {
        let mut inner = self.lock();
        inner.gateways.retain(|k, _| gateways.contains(k));
        inner.states.retain(|k, _| gateways.contains(k));
    }

    /// A Gateway after a reconcile: logged when its state differs from the last one logged.
    pub fn reconciled(
        &self,
        key: &Key,
        generation: i64,
        annotations: &BTreeMap<String, String>,
        status: &Value,
    ) {
        let listeners: Vec<String> = status
            .get("listeners")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|l| {
                let name = l.get("name").and_then(Value::as_str).unwrap_or("?");
                let addr = annotations
                    .get(&format!("{}-{name}", super::ADDRESS_ANNOTATION))
                    .map_or("not served".to_string(), |a| format!("on {a}"));
                format!(
                    "{name} {addr}, {} route(s) attached, {}",
                    l.get("attachedRoutes").and_then(Value::as_u64).unwrap_or(0),
                    conditions(l)
                )
            })
            .collect();
        let state = format!(
            "generation {generation}: {}; listeners: [{}]",
            conditions(status),
            listeners.join("; ")
        );
        let mut inner = self.lock();
        if inner.states.get(key) == Some(&state) {
            return;
        }
        inner.states.insert(key.clone(), state.clone());
        push(
            inner.gateways.entry(key.clone()).or_default(),
            format!("INFO reconciled Gateway {key} {state}"),
        );
    }

    /// The status writes a reconcile hands to the writer.
    pub fn status_writes(&self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::Gateway {
                    key,
                    annotations,
                    status,
                    ..
                } => {
                    let mut what = Vec::new();
                    if let Some(s) = status {
                        what.push(format!("status {}", conditions(s)));
                    }
                    if let Some(a) = annotations {
                        let addrs: Vec<String> =
                            a.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        what.push(format!("annotations {}", addrs.join(" ")));
                    }
                    self.gateway(
                        key,
                        format!("INFO writing Gateway {key}: {}", what.join("; ")),
                    );
                }
                Write::Status {
                    ar, key, status, ..
                } if ar.kind == "HTTPRoute" => {
                    for p in status
                        .get("parents")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|p| {
                            p.get("controllerName").and_then(Value::as_str) == Some(CONTROLLER_NAME)
                        })
                    {
                        let pref = p.get("parentRef").unwrap_or(&Value::Null);
                        let name = pref.get("name").and_then(Value::as_str).unwrap_or("");
                        let ns = pref
                            .get("namespace")
                            .and_then(Value::as_str)
                            .unwrap_or(&key.namespace);
                        self.gateway(
                            &Key::new(ns, name),
                            format!(
                                "INFO writing HTTPRoute {key} status for parent {ns}/{name}: {}",
                                conditions(p)
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// The faults in force: a namespace whose faults changed gets a line.
    pub fn faults(&self, faults: &FaultMap) {
        let now: BTreeMap<String, String> = faults
            .iter()
            .map(|(ns, f)| (ns.clone(), describe_faults(f)))
            .filter(|(_, d)| d != "none")
            .collect();
        let mut inner = self.lock();
        if inner.faults == now {
            return;
        }
        let namespaces: HashSet<&String> = inner.faults.keys().chain(now.keys()).collect();
        let mut namespaces: Vec<&String> = namespaces.into_iter().collect();
        namespaces.sort();
        let mut lines = Vec::new();
        for ns in namespaces {
            let before = inner.faults.get(ns).map_or("none", String::as_str);
            let after = now.get(ns).map_or("none", String::as_str);
            if before != after {
                lines.push(format!(
                    "WARN faults switched in namespace {ns}: {after} (was: {before})"
                ));
            }
        }
        inner.faults = now;
        for l in lines {
            push(&mut inner.global, l);
        }
    }

    /// One request the data plane answered.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        gateway: &Key,
        listener: &str,
        method: &str,
        host: &str,
        path: &str,
        status: u16,
        route: Option<&Key>,
        took: std::time::Duration,
    ) {
        let route = route.map_or("no route".to_string(), |r| format!("route {r}"));
        self.gateway(
            gateway,
            format!(
                "INFO request {method} {host}{path} on listener {listener}: {status}, {route}, {}ms",
                took.as_millis()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_gateway_log_has_its_own_lines_and_the_global_ones_and_logs_changes_only() {
        let log = GatewayLog::default();
        let gw = Key::new("infra", "gw");
        let other = Key::new("infra", "other");
        let status = json!({"conditions": [{"type": "Accepted", "status": "True"},
            {"type": "Programmed", "status": "False", "reason": "Pending"}],
            "listeners": [{"name": "http", "attachedRoutes": 2, "conditions": []}]});
        let ann: BTreeMap<String, String> = [(
            "demo.gwtest.dev/address-http".to_string(),
            "127.0.0.1:4000".to_string(),
        )]
        .into_iter()
        .collect();
        log.reconciled(&gw, 1, &ann, &status);
        log.reconciled(&gw, 1, &ann, &status);
        log.gateway(&other, "INFO about the other one".into());
        let mut faults = FaultMap::new();
        faults.insert(
            "t1".into(),
            Faults {
                hang: true,
                ..Faults::default()
            },
        );
        log.faults(&faults);
        log.faults(&faults);
        log.faults(&FaultMap::new());
        let lines: Vec<String> = log.lines(&gw, None).into_iter().map(|l| l.text).collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert_eq!(
            lines[0],
            "INFO reconciled Gateway infra/gw generation 1: Accepted=True \
             Programmed=False(Pending); listeners: [http on 127.0.0.1:4000, 2 route(s) attached, ]"
        );
        assert_eq!(
            lines[1],
            "WARN faults switched in namespace t1: hang (was: none)"
        );
        assert_eq!(
            lines[2],
            "WARN faults switched in namespace t1: none (was: hang)"
        );
        let later = log.lines(
            &gw,
            Some(SystemTime::now() + std::time::Duration::from_secs(1)),
        );
        assert!(later.is_empty());
        log.retain(&HashSet::from([other.clone()]));
        assert_eq!(log.lines(&gw, None).len(), 2, "only the global lines stay");
    }
}
