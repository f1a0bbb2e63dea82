//! Fault switches (SCENARIOS S1–S5): a ConfigMap `demo-faults` in the namespace of the object
//! concerned. Read through a watch, so a change takes effect within milliseconds.
//!
//! | key            | value      | effect                                                    |
//! |----------------|------------|-----------------------------------------------------------|
//! | `stale-status` | `"true"`   | S1: an Upstream whose name was written before in the namespace (another uid) gets no status |
//! | `slow`         | duration   | S2: each response waits this long                         |
//! | `fail-closed`  | `"true"`   | S3: routes answer 503; after recovery only routes modified since serve, the rest 404 |
//! | `hang`         | `"true"`   | S4: requests are never answered; status writes stop       |
//! | `flap`         | duration   | S5: this long after a route first serves, it reverts (404, Accepted Unknown) until the fault goes |

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The ConfigMap's name.
pub const CONFIGMAP: &str = "demo-faults";

/// The faults switched on in one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub stale_status: bool,
    pub slow: Option<Duration>,
    pub fail_closed: bool,
    pub hang: bool,
    pub flap: Option<Duration>,
    /// Values that did not parse (the key is then off).
    pub invalid: Vec<String>,
}

impl Faults {
    pub fn parse(data: &BTreeMap<String, String>) -> Faults {
        let mut f = Faults::default();
        let flag = |key: &str, invalid: &mut Vec<String>| -> bool {
            match data.get(key).map(|v| v.trim().to_ascii_lowercase()) {
                None => false,
                Some(v) if v == "true" => true,
                Some(v) if v == "false" || v.is_empty() => false,
                Some(v) => {
                    invalid.push(format!("{key}: {v:?} is not \"true\" or \"false\""));
                    false
                }
            }
        };
        let mut invalid = Vec::new();
        f.stale_status = flag("stale-status", &mut invalid);
        f.fail_closed = flag("fail-closed", &mut invalid);
        f.hang = flag("hang", &mut invalid);
        let duration = |key: &str, invalid: &mut Vec<String>| -> Option<Duration> {
            let v = data.get(key)?.trim();
            if v.is_empty() {
                return None;
            }
            match humantime::parse_duration(v) {
                Ok(d) if d.is_zero() => None,
                Ok(d) => Some(d),
                Err(e) => {
                    invalid.push(format!("{key}: {v:?}: {e}"));
                    None
                }
            }
        };
        f.slow = duration("slow", &mut invalid);
        f.flap = duration("flap", &mut invalid);
        f.invalid = invalid;
        f
    }
}

/// Faults by namespace.
pub type FaultMap = HashMap<String, Faults>;

/// S5 bookkeeping: when each route (by uid) first served a request while `flap` was on.
#[derive(Debug, Default)]
pub struct Flaps {
    first: Mutex<HashMap<String, (String, Instant)>>,
}

impl Flaps {
    /// Record a request served by a route; returns true for its first one.
    pub fn served(&self, uid: &str, namespace: &str, now: Instant) -> bool {
        let mut m = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if m.contains_key(uid) {
            return false;
        }
        m.insert(uid.to_string(), (namespace.to_string(), now));
        true
    }

    /// Is the route reverted at `now` (served first at least `after` ago)?
    pub fn reverted(&self, uid: &str, after: Duration, now: Instant) -> bool {
        let m = self.first.lock().unwrap_or_else(|e| e.into_inner());
        m.get(uid)
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) >= after)
    }

    /// Forget routes of namespaces where `flap` is off (a route serves again, and a new
    /// `flap` starts counting from its next request).
    pub fn retain_namespaces(&self, keep: impl Fn(&str) -> bool) {
        let mut m = self.first.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (ns, _)| keep(ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_key() {
        let f = Faults::parse(&data(&[
            ("stale-status", "true"),
            ("slow", "1500ms"),
            ("fail-closed", "True"),
            ("hang", "false"),
            ("flap", "2s"),
        ]));
        assert!(f.stale_status && f.fail_closed && !f.hang);
        assert_eq!(f.slow, Some(Duration::from_millis(1500)));
        assert_eq!(f.flap, Some(Duration::from_secs(2)));
        assert!(f.invalid.is_empty());
        let bad = Faults::parse(&data(&[("hang", "yes"), ("slow", "soon"), ("flap", "0s")]));
        assert_eq!(
            bad,
            Faults {
                invalid: bad.invalid.clone(),
                ..Faults::default()
            }
        );
        assert_eq!(bad.invalid.len(), 2);
    }

    #[test]
    fn flaps_revert_after_the_delay_and_reset() {
        let flaps = Flaps::default();
        let t0 = Instant::now();
        assert!(flaps.served("u1", "ns", t0));
        assert!(!flaps.served("u1", "ns", t0 + Duration::from_secs(5)));
        assert!(!flaps.reverted(
            "u1",
            Duration::from_secs(1),
            t0 + Duration::from_millis(999)
        ));
        assert!(flaps.reverted("u1", Duration::from_secs(1), t0 + Duration::from_secs(1)));
        assert!(!flaps.reverted("u2", Duration::ZERO, t0));
        flaps.retain_namespaces(|ns| ns != "ns");
        assert!(!flaps.reverted("u1", Duration::from_secs(1), t0 + Duration::from_secs(9)));
    }
}
