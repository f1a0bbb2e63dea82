//! Holds: how gwtest runs that share a cluster share objects (a suite fixture such as the
//! shipped `GatewayClass` and `gwtest-infra`, a fixed namespace gwtest created). Each run
//! using such an object puts an annotation `hold.gwtest.dev/<run id>` on it while it does;
//! a run that is done takes its own hold off, and deletes the object only when no hold is
//! left — with the resourceVersion it read as a precondition, so a run taking a hold in
//! between makes the delete fail (409) instead of losing its object.
//!
//! One request per call; retrying and waiting are the caller's.

use serde_json::{Map, Value, json};

use super::{Cluster, ClusterError, Kind};

/// Annotation prefix of holds: `hold.gwtest.dev/<run id>: <RFC 3339 time the hold was taken>`.
pub const HOLD_PREFIX: &str = "hold.gwtest.dev/";

/// The annotation key of `run`'s hold.
pub fn hold_key(run: &str) -> String {
    format!("{HOLD_PREFIX}{run}")
}

/// The runs holding an object.
pub fn holders(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.keys()
                .filter_map(|k| k.strip_prefix(HOLD_PREFIX))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The object's resourceVersion.
pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

fn annotation_patch(key: String, value: Value) -> Value {
    let mut a = Map::new();
    a.insert(key, value);
    json!({"metadata": {"annotations": a}})
}

impl Cluster {
    /// Put `run`'s hold on an object; returns the object as it is now.
    pub async fn add_hold(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        run: &str,
    ) -> Result<Value, ClusterError> {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let patch = annotation_patch(hold_key(run), Value::String(now));
        self.merge_patch(kind, namespace, name, &patch, false).await
    }

    /// Take `run`'s hold off an object; returns the object as it is now (`None`: it is gone).
    pub async fn release_hold(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        run: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let patch = annotation_patch(hold_key(run), Value::Null);
        match self.merge_patch(kind, namespace, name, &patch, false).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() && !matches!(e, ClusterError::UnknownKind { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_read_from_annotations() {
        let o = json!({"metadata": {"resourceVersion": "7", "annotations": {
            "hold.gwtest.dev/20260101-000000-aaaaaa": "2026-01-01T00:00:00Z",
            "hold.gwtest.dev/20260101-000001-bbbbbb": "2026-01-01T00:00:01Z",
            "other": "x"}}});
        let mut h = holders(&o);
        h.sort();
        assert_eq!(h, ["20260101-000000-aaaaaa", "20260101-000001-bbbbbb"]);
        assert_eq!(resource_version(&o), Some("7"));
        assert!(holders(&json!({"metadata": {}})).is_empty());
        assert_eq!(hold_key("r1"), "hold.gwtest.dev/r1");
        assert_eq!(
            annotation_patch(hold_key("r1"), Value::Null),
            json!({"metadata": {"annotations": {"hold.gwtest.dev/r1": null}}})
        );
    }
}
