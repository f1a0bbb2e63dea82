//! Upstream discovery by the demo gateway against a real embedded API server: labelled
//! Services become Upstreams (spec, owner reference, status Accepted for the current
//! generation), follow the Service's changes, and go with it.

mod support_gateway;

use std::time::Duration;

use gwtest_sandbox::gateway::model;
use serde_json::{Value, json};
use support_gateway::*;

const LIMIT: Duration = Duration::from_secs(60);

async fn svc_ports(env: &Env, name: &str) -> Value {
    env.get(&model::service_ar(), "apps", name).await.unwrap()["spec"]["ports"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_services_are_discovered_updated_and_removed() {
    Env::run(LIMIT, Options::default(), async |env| {
        env.namespace("apps");
        env.apply(&service_yaml("apps", "example-svc", true));
        env.apply(&service_yaml("apps", "plain", false));
        let up = env.wait_upstream_accepted("apps", "example-svc").await;
        assert_eq!(up["spec"]["service"], "example-svc");
        assert_eq!(up["spec"]["port"], 8080);
        assert_eq!(up["spec"]["ports"], svc_ports(env, "example-svc").await);
        assert_eq!(up["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(up["spec"]["selector"], json!({"app": "example-svc"}));
        assert_eq!(up["spec"]["labels"]["app"], "demo");
        let svc = env
            .get(&model::service_ar(), "apps", "example-svc")
            .await
            .unwrap();
        let owner = &up["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Service");
        assert_eq!(owner["uid"], svc["metadata"]["uid"]);
        assert_eq!(owner["controller"], true);
        let c = cond(&up["status"]["conditions"], "Accepted");
        assert_eq!(c["observedGeneration"], 1);
        assert!(c["message"].as_str().unwrap().contains("example-svc"));
        let first_uid = up["metadata"]["uid"].clone();

        // A Service change: the Upstream's spec follows (generation 2) and so does its status.
        env.merge(
            &model::service_ar(),
            "apps",
            "example-svc",
            json!({"spec": {"ports": [{"name": "http", "port": 9090}]}}),
        )
        .await;
        let up = env
            .wait_object(
                &model::upstream_ar(),
                "apps",
                "example-svc",
                "port 9090, Accepted for generation 2",
                |o| o["spec"]["port"] == 9090 && accepted_for_generation(o),
            )
            .await;
        assert_eq!(up["metadata"]["generation"], 2);
        assert_eq!(up["metadata"]["uid"], first_uid);

        // The unlabelled Service got nothing.
        assert!(
            env.get(&model::upstream_ar(), "apps", "plain")
                .await
                .is_none()
        );

        // Deleted with its Service; re-created: a new Upstream, with status (per-uid cache: no
        // S1 without the fault).
        env.recreate_service("apps", "example-svc").await;
        let up = env.wait_upstream_accepted("apps", "example-svc").await;
        assert_ne!(up["metadata"]["uid"], first_uid);

        // Losing the label removes it too.
        env.merge(
            &model::service_ar(),
            "apps",
            "example-svc",
            json!({"metadata": {"labels": {"demo.gwtest.dev/discover": null}}}),
        )
        .await;
        env.wait_gone(
            &model::upstream_ar(),
            "apps",
            "example-svc",
            "the Upstream of an unlabelled Service to go",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_someone_else_made_are_left_alone() {
    Env::run(LIMIT, Options::default(), async |env| {
        env.namespace("apps");
        env.apply("apiVersion: demo.gwtest.dev/v1alpha1\nkind: Upstream\nmetadata: {name: manual, namespace: apps}\nspec: {service: manual, port: 1}\n");
        env.apply(&service_yaml("apps", "other", true));
        env.wait_upstream_accepted("apps", "other")
            .await;
        let manual = env.get(&model::upstream_ar(), "apps", "manual").await.unwrap();
        assert!(manual.get("status").is_none(), "{manual}");
    })
    .await;
}
