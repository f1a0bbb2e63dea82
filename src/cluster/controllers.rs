//! "Is any controller looking after this?" for Gateway API objects. A Gateway whose conditions
//! are still the CRD's defaults (`Unknown`, reason `Pending`, "Waiting for controller"), a
//! GatewayClass nobody accepted, a route with no `status.parents`: a wait on such an object
//! fails because no controller runs, not because the controller is wrong. Failures name that,
//! with the class's `controllerName`, so a first run against a bare cluster explains itself.
//!
//! Reads only, bounded: it runs when a wait has already failed.

use std::time::Duration;

use serde_json::Value;

use super::{Cluster, split_api_version};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// How long the look may take.
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a controller has reported on the object: some condition is not the CRD's default
/// (`status: Unknown` with reason `Pending`).
pub fn reported(obj: &Value) -> bool {
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    conds.iter().any(|c| {
        let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        !(f("status") == "Unknown" && f("reason") == "Pending")
    })
}

fn str_at<'a>(o: &'a Value, p: &str) -> Option<&'a str> {
    o.pointer(p).and_then(Value::as_str)
}

/// The defaults a controller never replaced, e.g. `Accepted=Unknown "Waiting for controller"`.
fn defaults(obj: &Value) -> String {
    let conds: Vec<String> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} {:?}",
                str_at(c, "/type").unwrap_or("?"),
                str_at(c, "/status").unwrap_or("?"),
                str_at(c, "/message").unwrap_or_default()
            )
        })
        .collect();
    if conds.is_empty() {
        "it has no status".into()
    } else {
        format!(
            "its conditions are still the defaults: {}",
            conds.join(", ")
        )
    }
}

/// What to do when nobody accepted a class with this controllerName.
fn run_a_controller(controller: &str) -> String {
    let mut s = format!("is a controller for `{controller}` running?");
    if controller == gwtest_sandbox::gateway::CONTROLLER_NAME {
        s.push_str(
            " It is the demo gateway's class: run with --demo-gateway (the demo gateway \
             against this cluster) or --sandbox",
        );
    }
    s
}

/// Why nobody reports on objects of GatewayClass `class`, or `None` when a controller
/// accepted it.
async fn class_problem(cluster: &Cluster, api_version: &str, class: &str) -> Option<String> {
    let kind = cluster.resolve(api_version, "GatewayClass").await.ok()?;
    let Ok(found) = cluster.get(&kind, None, class).await else {
        return None;
    };
    let Some(gc) = found else {
        return Some(format!(
            "GatewayClass {class} does not exist: apply it (and run its controller)"
        ));
    };
    if reported(&gc) {
        return None;
    }
    let controller = str_at(&gc, "/spec/controllerName").unwrap_or("?");
    Some(format!(
        "GatewayClass {class} has not been accepted by any controller (controllerName \
         {controller}): {}",
        run_a_controller(controller)
    ))
}

/// A sentence saying no controller has reported on `obj` and the likely cause, when `obj` is
/// a Gateway API object nobody reported on; `None` otherwise (or when the look fails).
pub async fn unreconciled(cluster: &Cluster, obj: &Value) -> Option<String> {
    tokio::time::timeout(LOOK_TIMEOUT, look(cluster, obj))
        .await
        .ok()
        .flatten()
}

async fn look(cluster: &Cluster, obj: &Value) -> Option<String> {
    let api_version = str_at(obj, "/apiVersion")?;
    if split_api_version(api_version).0 != GATEWAY_GROUP {
        return None;
    }
    let kind = str_at(obj, "/kind")?;
    let name = str_at(obj, "/metadata/name").unwrap_or("?");
    let ns = str_at(obj, "/metadata/namespace");
    let what = match ns {
        Some(ns) => format!("{kind} {name} in {ns}"),
        None => format!("{kind} {name}"),
    };
    match kind {
        "GatewayClass" => {
            if reported(obj) {
                return None;
            }
            let controller = str_at(obj, "/spec/controllerName").unwrap_or("?");
            Some(format!(
                "no controller has accepted {what} ({}; controllerName {controller}): {}",
                defaults(obj),
                run_a_controller(controller)
            ))
        }
        "Gateway" => {
            if reported(obj) {
                return None;
            }
            let head = format!("no controller has reported on {what} ({})", defaults(obj));
            let class = str_at(obj, "/spec/gatewayClassName")?;
            Some(match class_problem(cluster, api_version, class).await {
                Some(p) => format!("{head}; {p}"),
                None => format!(
                    "{head}, although its GatewayClass {class} is accepted: its controller \
                     has not got to it (yet)"
                ),
            })
        }
        k if k.ends_with("Route") => {
            let parents = obj
                .pointer("/status/parents")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            if parents {
                return None;
            }
            let head = format!("no controller has reported on {what} (status.parents is empty)");
            // The first parent Gateway says why.
            let parent = obj
                .pointer("/spec/parentRefs")
                .and_then(Value::as_array)
                .and_then(|p| {
                    p.iter()
                        .find(|r| str_at(r, "/kind").is_none_or(|k| k == "Gateway"))
                })?;
            let gw_name = str_at(parent, "/name")?;
            let gw_ns = str_at(parent, "/namespace").or(ns);
            let gw_kind = cluster.resolve(api_version, "Gateway").await.ok()?;
            let gw = match cluster.get(&gw_kind, gw_ns, gw_name).await {
                Ok(Some(gw)) => gw,
                Ok(None) => {
                    return Some(format!(
                        "{head}; its parent Gateway {gw_name} does not exist"
                    ));
                }
                Err(_) => return Some(head),
            };
            let gw_api = str_at(&gw, "/apiVersion").unwrap_or(api_version);
            match (reported(&gw), str_at(&gw, "/spec/gatewayClassName")) {
                (false, Some(class)) => match class_problem(cluster, gw_api, class).await {
                    Some(p) => Some(format!("{head}, nor on its parent Gateway {gw_name}; {p}")),
                    None => Some(head),
                },
                _ => Some(head),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_not_a_report() {
        let default = json!({"status": {"conditions": [
            {"type": "Accepted", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"},
            {"type": "Programmed", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"}]}});
        assert!(!reported(&default));
        assert_eq!(
            defaults(&default),
            "its conditions are still the defaults: Accepted=Unknown \"Waiting for controller\", Programmed=Unknown \"Waiting for controller\""
        );
        assert!(!reported(&json!({})));
        assert_eq!(defaults(&json!({})), "it has no status");
        let accepted = json!({"status": {"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "Unknown", "reason": "Pending"}]}});
        assert!(reported(&accepted));
        // A controller saying Unknown for its own reason has reported.
        assert!(reported(&json!({"status": {"conditions": [
            {"type": "Accepted", "status": "Unknown", "reason": "NoResources"}]}})));
    }

    #[test]
    fn the_demo_class_points_at_the_demo_gateway() {
        assert!(
            run_a_controller(gwtest_sandbox::gateway::CONTROLLER_NAME).contains("--demo-gateway")
        );
        assert_eq!(
            run_a_controller("example.com/gw"),
            "is a controller for `example.com/gw` running?"
        );
    }
}
