//! A Gateway API ConformanceReport from the shipped conformance-derived suite, through the real
//! binary against the sandbox: the upstream `conformance/apis/v1` shape, the GATEWAY-HTTP
//! profile with core and extended results from the tests' labels, and a failing test named
//! among the failed tests of its level.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::gwtest;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const IMPLEMENTATION: &str = "organization=gwtest,project=demo-gateway,url=https://example.com/gwtest,version=v0.1.0,contact=@gwtest/maintainers";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The labels of every test of a suite directory, through `gwtest list --json`.
fn labels(cwd: &Path, dir: &str) -> Vec<(String, Vec<String>)> {
    let out = gwtest(&["list", dir, "--json"]).cwd(cwd).run();
    out.assert_exit(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn report(cwd: &Path, file: &Path, expect_exit: i32) -> Value {
    let out = gwtest(&[
        "run",
        "--sandbox",
        "suites/gateway-api",
        "--conformance-report",
        file.to_str().unwrap(),
        "--implementation",
        IMPLEMENTATION,
    ])
    .cwd(cwd)
    .run();
    out.assert_exit(expect_exit);
    serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

#[test]
fn the_shipped_suite_gives_an_upstream_conformance_report() {
    let ws = support::Workspace::new("conformance");
    let file = ws.path().join("report.yaml");
    let v = report(&repo(), &file, 0);

    // The upstream type's fields (conformance/apis/v1 at v1.6.1).
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "apiVersion",
            "date",
            "gatewayAPIChannel",
            "gatewayAPIVersion",
            "implementation",
            "kind",
            "mode",
            "profiles"
        ]
    );
    assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(v["kind"], "ConformanceReport");
    assert_eq!(v["gatewayAPIVersion"], "v1.6.1");
    assert_eq!(v["gatewayAPIChannel"], "standard");
    assert_eq!(v["mode"], "default");
    assert_eq!(v["implementation"]["project"], "demo-gateway");
    assert_eq!(
        v["implementation"]["contact"],
        serde_json::json!(["@gwtest/maintainers"])
    );
    assert!(humantime::parse_rfc3339(v["date"].as_str().unwrap()).is_ok());

    // What the labels say the suite covers: core tests have only core features.
    let core_features = ["Gateway", "HTTPRoute", "ReferenceGrant"];
    let tests = labels(&repo(), "suites/gateway-api");
    let mut core = 0;
    let mut extended = 0;
    let mut features = std::collections::BTreeSet::new();
    for (_, l) in &tests {
        assert!(l.contains(&"profile:GATEWAY-HTTP".to_owned()), "{l:?}");
        let ext: Vec<&str> = l
            .iter()
            .filter_map(|x| x.strip_prefix("feature:"))
            .filter(|f| !core_features.contains(f))
            .collect();
        if ext.is_empty() {
            core += 1;
        } else {
            extended += 1;
            features.extend(ext.into_iter().map(str::to_owned));
        }
    }
    assert!(
        core >= 8 && extended >= 6,
        "core {core}, extended {extended}"
    );

    let profiles = v["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1);
    let p = &profiles[0];
    assert_eq!(p["name"], "GATEWAY-HTTP");
    assert_eq!(
        p["core"],
        serde_json::json!({"result": "success", "statistics": {"Failed": 0, "Passed": core, "Skipped": 0}})
    );
    let ext = &p["extended"];
    assert_eq!(ext["result"], "success");
    assert_eq!(
        ext["statistics"],
        serde_json::json!({"Failed": 0, "Passed": extended, "Skipped": 0})
    );
    let supported: Vec<String> = ext["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(supported, features.into_iter().collect::<Vec<_>>());
    let unsupported = ext["unsupportedFeatures"].as_array().unwrap();
    assert!(unsupported.contains(&"HTTPRouteRequestMirror".into()));
    assert_eq!(
        p["summary"],
        "Core tests succeeded. Extended tests succeeded."
    );
}

#[test]
fn a_failing_extended_test_fails_the_extended_level_and_is_named() {
    let ws = support::Workspace::new("conformance-fail");
    copy_dir(
        &repo().join("suites/gateway-api"),
        &ws.path().join("suites/gateway-api"),
    );
    copy_dir(&repo().join("fixtures"), &ws.path().join("fixtures"));
    ws.write("gwtest.toml", "");
    // The redirect-path test now expects a status the gateway does not give.
    let f = ws
        .path()
        .join("suites/gateway-api/httproute-redirect-path.test.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    let broken = text.replacen("status: 301", "status: 308", 1);
    assert_ne!(text, broken);
    std::fs::write(
        &f,
        broken.replace("    request:\n", "    timeout: 2s\n    request:\n"),
    )
    .unwrap();
    let file = ws.path().join("report.yaml");
    let v = report(ws.path(), &file, 1);
    let p = &v["profiles"][0];
    assert_eq!(p["core"]["result"], "success");
    assert_eq!(p["extended"]["result"], "failure");
    assert_eq!(
        p["extended"]["failedTests"],
        serde_json::json!(["HTTPRouteRedirectPath"])
    );
    assert_eq!(p["extended"]["statistics"]["Failed"], 1);
    assert_eq!(
        p["summary"],
        "Core tests succeeded. Extended tests failed with 1 test failures."
    );
}

#[test]
fn a_report_needs_the_implementation_and_known_profiles() {
    let ws = support::one_test(
        "conformance-bad",
        "name: s\nlabels: [\"profile:GATEWAY-HTTPS\"]",
        "",
        "  - exec:\n      command: [\"true\"]\n",
    );
    ws.gwtest(&["run", "s", "--conformance-report", "r.yaml"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("missing: organization, project, url, version, contact");
    ws.gwtest(&[
        "run",
        "s",
        "--conformance-report",
        "r.yaml",
        "--implementation",
        IMPLEMENTATION,
    ])
    .run()
    .assert_exit(2)
    .assert_stderr_has("unknown conformance profile GATEWAY-HTTPS");
    // In gwtest.toml, as a table.
    ws.write(
        "gwtest.toml",
        "[profile.default]\nconformance-report = \"from-toml.yaml\"\n\
         implementation = {organization = \"o\", project = \"p\", url = \"u\", version = \"v\", contact = \"c\"}\n",
    );
    ws.suite("s", "name: s\nlabels: [\"profile:GATEWAY-HTTP\"]");
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    let v: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(ws.path().join("from-toml.yaml")).unwrap())
            .unwrap();
    assert_eq!(v["implementation"]["contact"], serde_json::json!(["c"]));
    assert_eq!(v["profiles"][0]["core"]["result"], "success");
}
