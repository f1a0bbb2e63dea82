//! A Gateway API conformance report (`--conformance-report FILE`): the YAML `ConformanceReport`
//! of gateway-api's `conformance/apis/v1` (v1.6.1), so an implementation that runs the shipped
//! conformance-derived suites (or its own) gets a report in the upstream format.
//!
//! Which profile and features a test covers comes from its labels (a suite's labels are its
//! tests' too):
//!
//! - `profile:GATEWAY-HTTP` — the conformance profile(s) the test counts toward;
//! - `feature:HTTPRouteQueryParamMatching` — the features it exercises; a test is *extended*
//!   in a profile when one of its features is not a core feature of that profile (as the
//!   upstream suite decides), else *core*;
//! - `conformance-test:HTTPRouteQueryParamMatching` — the upstream test's short name, used in
//!   `failedTests`/`skippedTests` (default: the gwtest test name).
//!
//! Tests without a `profile:` label are not in the report. Per profile, core and extended
//! statistics count each test once, however many times it ran (`--repeat`): it failed if any
//! repetition failed, and a flaky test (passed on a re-run) counts as passed. Tests that did
//! not run (fail-fast, Ctrl-C) are skipped. `supportedFeatures` are the extended features the
//! tests that ran exercised; `unsupportedFeatures` the rest of the profile's extended features
//! at v1.6.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::Reporter;
use super::collect::{Record, write_atomic};
use crate::config::ConformanceConfig;
use crate::engine::events::{Event, TestStatus};

/// gateway-api's group/version of the report types.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

const GATEWAY_EXTENDED: &[&str] = &[
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructurePropagation",
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "ListenerSet",
];

const HTTPROUTE_EXTENDED: &[&str] = &[
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
];

const MESH_EXTENDED: &[&str] = &[
    "MeshClusterIPMatching",
    "MeshConsumerRoute",
    "MeshHTTPRouteRewritePath",
    "MeshHTTPRouteSchemeRedirect",
    "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteRedirectPath",
    "MeshHTTPRouteBackendRequestHeaderModification",
    "MeshHTTPRouteQueryParamMatching",
    "MeshHTTPRouteNamedRouteRule",
];

/// A conformance profile of gateway-api v1.6.1: its core features and its extended ones.
pub struct Profile {
    pub name: &'static str,
    pub core: &'static [&'static str],
    pub extended: Vec<&'static str>,
}

/// The profiles of gateway-api v1.6.1 (conformance/utils/suite/profiles.go).
pub fn profiles() -> Vec<Profile> {
    let cat = |parts: &[&[&'static str]]| parts.iter().flat_map(|p| p.iter().copied()).collect();
    vec![
        Profile {
            name: "GATEWAY-HTTP",
            core: &["Gateway", "ReferenceGrant", "HTTPRoute"],
            extended: cat(&[
                GATEWAY_EXTENDED,
                HTTPROUTE_EXTENDED,
                &["BackendTLSPolicy", "BackendTLSPolicySANValidation"],
            ]),
        },
        Profile {
            name: "GATEWAY-TLS",
            core: &["Gateway", "ReferenceGrant", "TLSRoute"],
            extended: cat(&[
                GATEWAY_EXTENDED,
                &["TLSRouteModeTerminate", "TLSRouteModeMixed"],
            ]),
        },
        Profile {
            name: "GATEWAY-TCP",
            core: &["Gateway", "TCPRoute", "ReferenceGrant"],
            extended: cat(&[GATEWAY_EXTENDED, &["TCPRoute"]]),
        },
        Profile {
            name: "GATEWAY-UDP",
            core: &["Gateway", "UDPRoute", "ReferenceGrant"],
            extended: cat(&[GATEWAY_EXTENDED, &["UDPRoute"]]),
        },
        Profile {
            name: "GATEWAY-GRPC",
            core: &["Gateway", "ReferenceGrant", "GRPCRoute"],
            extended: cat(&[GATEWAY_EXTENDED]),
        },
        Profile {
            name: "MESH-HTTP",
            core: &["Mesh", "HTTPRoute"],
            extended: cat(&[MESH_EXTENDED]),
        },
        Profile {
            name: "MESH-GRPC",
            core: &["Mesh", "GRPCRoute"],
            extended: cat(&[MESH_EXTENDED]),
        },
    ]
}

/// The values of `prefix:VALUE` labels.
fn labelled<'a>(labels: &'a [String], prefix: &str) -> Vec<&'a str> {
    labels
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter(|v| !v.is_empty())
        .collect()
}

/// A test's outcome across its repetitions: failed if any failed, skipped if none ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Passed,
    Failed,
    Skipped,
}

#[derive(Default)]
struct Level {
    passed: u32,
    failed: u32,
    skipped: u32,
    failed_tests: BTreeSet<String>,
    skipped_tests: BTreeSet<String>,
}

impl Level {
    fn add(&mut self, name: &str, v: Verdict) {
        match v {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed => {
                self.failed += 1;
                self.failed_tests.insert(name.to_owned());
            }
            Verdict::Skipped => {
                self.skipped += 1;
                self.skipped_tests.insert(name.to_owned());
            }
        }
    }

    fn result(&self) -> &'static str {
        if self.failed > 0 {
            "failure"
        } else if self.skipped > 0 {
            "partial"
        } else {
            "success"
        }
    }

    fn summary(&self) -> String {
        match self.result() {
            "failure" => format!("failed with {} test failures", self.failed),
            "partial" => format!("partially succeeded with {} test skips", self.skipped),
            _ => "succeeded".into(),
        }
    }

    /// The upstream `Status` (keys sorted, as sigs.k8s.io/yaml writes them).
    fn status(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if !self.failed_tests.is_empty() {
            m.insert("failedTests".into(), json!(self.failed_tests));
        }
        m.insert("result".into(), self.result().into());
        if !self.skipped_tests.is_empty() {
            m.insert("skippedTests".into(), json!(self.skipped_tests));
        }
        // Statistics has no JSON tags upstream: its keys are the Go field names.
        m.insert(
            "statistics".into(),
            json!({"Failed": self.failed, "Passed": self.passed, "Skipped": self.skipped}),
        );
        m
    }
}

/// Labels naming a profile gwtest does not know (gateway-api v1.6.1 has no such profile).
/// `--conformance-report`: the `profile:` labels of the picked tests must name profiles this
/// Gateway API version has.
pub fn check_profiles(
    suites: &[crate::suite::load::Suite],
    picks: &[crate::engine::select::SuitePick],
) -> Result<(), String> {
    let labels: Vec<Vec<String>> = picks
        .iter()
        .flat_map(|p| {
            p.tests
                .iter()
                .map(|(ti, _)| suites[p.suite].tests[*ti].labels.clone())
        })
        .collect();
    let unknown = unknown_profiles(&labels);
    if unknown.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = profiles().iter().map(|p| p.name).collect();
    Err(format!(
        "--conformance-report: unknown conformance profile{} {} in `profile:` labels \
         (Gateway API {} has {})",
        if unknown.len() == 1 { "" } else { "s" },
        unknown.join(", "),
        crate::config::GATEWAY_API_VERSION,
        known.join(", ")
    ))
}

pub fn unknown_profiles(labels: &[Vec<String>]) -> Vec<String> {
    let known: Vec<&str> = profiles().iter().map(|p| p.name).collect();
    let mut out: Vec<String> = labels
        .iter()
        .flat_map(|l| labelled(l, "profile:"))
        .filter(|p| !known.contains(p))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The report as a JSON value (the YAML is written from it).
pub fn report(r: &Record, cfg: &ConformanceConfig, date: std::time::SystemTime) -> Value {
    // Each test once: (short name, labels) -> verdict over its repetitions.
    let mut tests: BTreeMap<(String, String), (String, Vec<String>, Verdict)> = BTreeMap::new();
    for s in &r.suites {
        for t in &s.tests {
            let status = r.outcome(s, t).status;
            let v = match status {
                TestStatus::Passed | TestStatus::Flaky => Verdict::Passed,
                TestStatus::Failed => Verdict::Failed,
                TestStatus::Skipped => Verdict::Skipped,
            };
            let short = labelled(&t.labels, "conformance-test:")
                .first()
                .map_or_else(|| t.id.name.clone(), |s| (*s).to_owned());
            let e = tests
                .entry((s.name.clone(), t.id.name.clone()))
                .or_insert_with(|| (short, t.labels.clone(), v));
            e.2 = match (e.2, v) {
                (Verdict::Failed, _) | (_, Verdict::Failed) => Verdict::Failed,
                (Verdict::Passed, _) | (_, Verdict::Passed) => Verdict::Passed,
                _ => Verdict::Skipped,
            };
        }
    }
    let mut reports = Vec::new();
    for p in profiles() {
        let mut core = Level::default();
        let mut extended: Option<Level> = None;
        let mut supported: BTreeSet<&str> = BTreeSet::new();
        let mut any = false;
        for (short, labels, v) in tests.values() {
            if !labelled(labels, "profile:").contains(&p.name) {
                continue;
            }
            any = true;
            let features = labelled(labels, "feature:");
            let ext: Vec<&str> = features
                .iter()
                .copied()
                .filter(|f| !p.core.contains(f))
                .collect();
            if ext.is_empty() {
                core.add(short, *v);
            } else {
                extended.get_or_insert_with(Level::default).add(short, *v);
                if *v != Verdict::Skipped {
                    supported.extend(ext);
                }
            }
        }
        if !any {
            continue;
        }
        let mut summary = format!("Core tests {}", core.summary());
        let mut m = Map::new();
        m.insert("core".into(), Value::Object(core.status()));
        if let Some(ext) = &extended {
            summary.push_str(&format!(". Extended tests {}", ext.summary()));
            let mut e = ext.status();
            if !supported.is_empty() {
                e.insert("supportedFeatures".into(), json!(supported));
            }
            let unsupported: BTreeSet<&str> = p
                .extended
                .iter()
                .copied()
                .filter(|f| !supported.contains(f))
                .collect();
            if !unsupported.is_empty() {
                e.insert("unsupportedFeatures".into(), json!(unsupported));
            }
            let sorted: BTreeMap<String, Value> = e.into_iter().collect();
            m.insert("extended".into(), json!(sorted));
        }
        m.insert("name".into(), p.name.into());
        m.insert("summary".into(), format!("{summary}.").into());
        reports.push(Value::Object(m));
    }
    let i = &cfg.implementation;
    json!({
        "apiVersion": API_VERSION,
        "date": humantime::format_rfc3339_seconds(date).to_string(),
        "gatewayAPIChannel": cfg.gateway_api_channel,
        "gatewayAPIVersion": cfg.gateway_api_version,
        "implementation": {
            "contact": i.contact,
            "organization": i.organization,
            "project": i.project,
            "url": i.url,
            "version": i.version,
        },
        "kind": "ConformanceReport",
        "mode": cfg.mode,
        "profiles": reports,
    })
}

/// The report as YAML.
pub fn render(r: &Record, cfg: &ConformanceConfig) -> anyhow::Result<String> {
    let v = report(r, cfg, std::time::SystemTime::now());
    Ok(serde_saphyr::to_string(&v)?)
}

/// The `--conformance-report` reporter.
pub struct Conformance {
    cfg: ConformanceConfig,
    record: Record,
}

impl Conformance {
    pub fn new(cfg: ConformanceConfig) -> Self {
        Conformance {
            cfg,
            record: Record::new(),
        }
    }

    pub fn path(&self) -> &PathBuf {
        &self.cfg.path
    }
}

impl Reporter for Conformance {
    fn event(&mut self, e: &Event) {
        self.record.event(e);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let text = render(&self.record, &self.cfg)?;
        write_atomic(&self.cfg.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Implementation;
    use crate::engine::events::{RunSummary, SuitePlan, TestKey, TestReport, TryReport};
    use crate::suite::spanned::Loc;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn cfg() -> ConformanceConfig {
        ConformanceConfig {
            path: "r.yaml".into(),
            implementation: Implementation {
                organization: "acme".into(),
                project: "gw".into(),
                url: "https://example.com/gw".into(),
                version: "v1.2.3".into(),
                contact: vec!["@acme/gw".into()],
            },
            gateway_api_version: "v1.6.1".into(),
            gateway_api_channel: "standard".into(),
            mode: "default".into(),
        }
    }

    fn record(tests: &[(&str, &[&str], TestStatus, u32)]) -> Record {
        let ids: Vec<_> = tests
            .iter()
            .map(|(n, _, _, rep)| {
                Arc::new(TestKey {
                    suite: "gateway-api".into(),
                    name: (*n).into(),
                    file: "suites/gateway-api/t.test.yaml".into(),
                    loc: Loc::new(1, 1),
                    repeat: *rep,
                })
            })
            .collect();
        let mut r = Record::new();
        r.event(&Event::RunStarted {
            run_id: "r".into(),
            trace_id: "t".into(),
            started: SystemTime::now(),
            suites: vec![SuitePlan {
                index: 0,
                name: "gateway-api".into(),
                file: "suites/gateway-api/suite.yaml".into(),
                tests: ids.clone(),
                labels: tests
                    .iter()
                    .map(|(_, l, _, _)| l.iter().map(|s| s.to_string()).collect())
                    .collect(),
            }],
            parallel: 1,
        });
        for (id, (_, _, status, _)) in ids.into_iter().zip(tests) {
            r.event(&Event::TestFinished {
                report: TestReport {
                    id,
                    status: *status,
                    duration: Duration::ZERO,
                    tries: vec![TryReport::new(
                        *status == TestStatus::Passed,
                        Duration::ZERO,
                        Vec::new(),
                    )],
                    skip_reason: None,
                },
            });
        }
        r.event(&Event::RunFinished {
            summary: RunSummary {
                counts: Default::default(),
                duration: Duration::ZERO,
                interrupted: false,
                cleanup_failed: 0,
                cluster_unusable: None,
                not_started: None,
                quit: false,
            },
        });
        r
    }

    const HTTP: &str = "profile:GATEWAY-HTTP";

    #[test]
    fn core_and_extended_results_statistics_and_features_per_profile() {
        let r = record(&[
            (
                "simple",
                &[
                    HTTP,
                    "feature:Gateway",
                    "feature:HTTPRoute",
                    "conformance-test:HTTPRouteSimpleSameNamespace",
                ],
                TestStatus::Passed,
                0,
            ),
            (
                "grant",
                &[HTTP, "feature:ReferenceGrant", "feature:HTTPRoute"],
                TestStatus::Passed,
                0,
            ),
            (
                "query",
                &[
                    HTTP,
                    "feature:HTTPRoute",
                    "feature:HTTPRouteQueryParamMatching",
                    "conformance-test:HTTPRouteQueryParamMatching",
                ],
                TestStatus::Failed,
                0,
            ),
            (
                "method",
                &[HTTP, "feature:HTTPRouteMethodMatching"],
                TestStatus::Flaky,
                0,
            ),
            (
                "method",
                &[HTTP, "feature:HTTPRouteMethodMatching"],
                TestStatus::Passed,
                1,
            ),
            (
                "mirror",
                &[HTTP, "feature:HTTPRouteRequestMirror"],
                TestStatus::Skipped,
                0,
            ),
            ("unlabelled", &["feature:HTTPRoute"], TestStatus::Failed, 0),
        ]);
        let v = report(&r, &cfg(), SystemTime::UNIX_EPOCH);
        assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(v["kind"], "ConformanceReport");
        assert_eq!(v["date"], "1970-01-01T00:00:00Z");
        assert_eq!(v["implementation"]["contact"], json!(["@acme/gw"]));
        let profiles = v["profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), 1, "{v:#}");
        let p = &profiles[0];
        assert_eq!(p["name"], "GATEWAY-HTTP");
        assert_eq!(
            p["core"],
            json!({"result": "success", "statistics": {"Failed": 0, "Passed": 2, "Skipped": 0}})
        );
        let ext = &p["extended"];
        assert_eq!(ext["result"], "failure");
        assert_eq!(
            ext["statistics"],
            json!({"Failed": 1, "Passed": 1, "Skipped": 1})
        );
        assert_eq!(ext["failedTests"], json!(["HTTPRouteQueryParamMatching"]));
        assert_eq!(ext["skippedTests"], json!(["mirror"]));
        assert_eq!(
            ext["supportedFeatures"],
            json!(["HTTPRouteMethodMatching", "HTTPRouteQueryParamMatching"])
        );
        let unsupported = ext["unsupportedFeatures"].as_array().unwrap();
        assert!(unsupported.contains(&json!("HTTPRouteRequestMirror")));
        assert!(!unsupported.contains(&json!("HTTPRouteMethodMatching")));
        assert_eq!(
            p["summary"],
            "Core tests succeeded. Extended tests failed with 1 test failures."
        );
        let yaml = render(&r, &cfg()).unwrap();
        assert!(yaml.contains("kind: ConformanceReport"), "{yaml}");
        assert!(yaml.contains("Passed: 2"), "{yaml}");
    }

    #[test]
    fn a_core_failure_fails_the_core_level_and_skips_make_it_partial() {
        let r = record(&[
            ("a", &[HTTP, "feature:HTTPRoute"], TestStatus::Failed, 0),
            ("b", &[HTTP], TestStatus::Passed, 0),
        ]);
        let v = report(&r, &cfg(), SystemTime::UNIX_EPOCH);
        let p = &v["profiles"][0];
        assert_eq!(p["core"]["result"], "failure");
        assert_eq!(p["core"]["failedTests"], json!(["a"]));
        assert!(p.get("extended").is_none());
        assert_eq!(p["summary"], "Core tests failed with 1 test failures.");
        let r = record(&[("a", &[HTTP], TestStatus::Skipped, 0)]);
        let v = report(&r, &cfg(), SystemTime::UNIX_EPOCH);
        assert_eq!(v["profiles"][0]["core"]["result"], "partial");
        assert_eq!(
            v["profiles"][0]["summary"],
            "Core tests partially succeeded with 1 test skips."
        );
    }

    #[test]
    fn unknown_profiles_are_found() {
        assert_eq!(
            unknown_profiles(&[vec!["profile:GATEWAY-HTTP".into(), "profile:HTTP".into()]]),
            ["HTTP"]
        );
    }
}
