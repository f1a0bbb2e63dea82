//! kube-rs (the client gwtest itself uses) against the embedded API server: typed and dynamic
//! APIs, selectors, conflicts, server-side apply, patches, the status subresource, CRDs with
//! discovery, `kube::runtime::watcher` (including recovery from 410 Expired), raw watches,
//! namespace deletion, kubeconfig loading over TLS and plain HTTP, and shutdown with open
//! watches. Every test is bounded by a timeout.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::discovery::Discovery;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

fn init_crypto() {
    gwtest::install_crypto_provider();
}

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the test finished in time");
}

async fn start(tls: bool) -> (ApiServer, Client) {
    init_crypto();
    let server = ApiServer::start(ApiServerConfig {
        tls,
        ..Default::default()
    })
    .await
    .expect("start");
    let client = Client::try_from(server.kube_config()).expect("client");
    (server, client)
}

/// A server with namespace `ns`, a client, and the namespace's ConfigMaps.
async fn start_in(ns: &str, tls: bool) -> (ApiServer, Client, Api<ConfigMap>) {
    let (server, client) = start(tls).await;
    make_ns(&client, ns).await;
    let cms = Api::namespaced(client.clone(), ns);
    (server, client, cms)
}

/// Runs `test` (bounded) on a TLS server with namespace `ns`, then shuts the server down.
async fn in_namespace(ns: &str, test: impl AsyncFnOnce(&ApiServer, &Client, Api<ConfigMap>)) {
    bounded(async {
        let (server, client, cms) = start_in(ns, true).await;
        test(&server, &client, cms).await;
        server.shutdown().await;
    })
    .await;
}

async fn make_ns(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

fn cm(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data}))
        .unwrap()
}

async fn create(cms: &Api<ConfigMap>, c: ConfigMap) -> ConfigMap {
    cms.create(&PostParams::default(), &c)
        .await
        .expect("create")
}

async fn merge<K>(api: &Api<K>, name: &str, patch: Value) -> K
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("merge patch")
}

/// Delete an object a finalizer holds: the server answers with the object, not a Status.
async fn delete_held(cms: &Api<ConfigMap>, name: &str) -> ConfigMap {
    cms.delete(name, &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object")
}

/// Poll until `name` is gone (5 s at most).
async fn wait_gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next item of a watch stream (10 s at most); `None` once it ended.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch event in time")
}

/// The names a watcher lists before `InitDone`.
async fn initial_names<K: Resource>(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin),
) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match next(stream).await.expect("open").unwrap() {
            watcher::Event::InitApply(o) => names.push(o.name_any()),
            watcher::Event::InitDone => return names,
            _ => {}
        }
    }
}

/// The name of the next object a watcher applies.
async fn next_applied<K: Resource>(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin),
) -> String {
    loop {
        if let watcher::Event::Apply(o) = next(stream).await.expect("open").unwrap() {
            return o.name_any();
        }
    }
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_crud_selectors_and_conflicts() {
    in_namespace("t1", async |_, client, cms| {
        let pp = PostParams::default();
        create(
            &cms,
            cm(
                "a",
                json!({"app": "web", "tier": "front"}),
                json!({"k": "1"}),
            ),
        )
        .await;
        create(
            &cms,
            cm("b", json!({"app": "web", "tier": "back"}), json!({})),
        )
        .await;
        create(&cms, cm("c", json!({"app": "db"}), json!({}))).await;
        let dup = api_status(
            cms.create(&pp, &cm("a", json!({}), json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

        let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
            l.items.iter().map(|c| c.name_any()).collect()
        };
        let q = |s: &str| ListParams::default().labels(s);
        assert_eq!(names(cms.list(&q("app=web")).await.unwrap()), ["a", "b"]);
        assert_eq!(names(cms.list(&q("app!=web")).await.unwrap()), ["c"]);
        assert_eq!(
            names(cms.list(&q("tier in (front,back)")).await.unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            names(cms.list(&q("tier notin (front)")).await.unwrap()),
            ["b", "c"]
        );
        assert_eq!(names(cms.list(&q("tier")).await.unwrap()), ["a", "b"]);
        assert_eq!(names(cms.list(&q("!tier")).await.unwrap()), ["c"]);
        assert_eq!(
            names(
                cms.list(&ListParams::default().fields("metadata.name=b"))
                    .await
                    .unwrap()
            ),
            ["b"]
        );
        let all: Api<ConfigMap> = Api::all(client.clone());
        let everywhere = all
            .list(&ListParams::default().fields("metadata.namespace=t1"))
            .await
            .unwrap();
        assert_eq!(everywhere.items.len(), 3);
        // Pagination: two pages with a continue token.
        let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
        assert_eq!(page.items.len(), 2);
        let token = page.metadata.continue_.clone().expect("a continue token");
        let rest = cms
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap();
        assert_eq!(names(rest), ["c"]);

        // Update with the current resourceVersion, then again with the stale one: 409.
        let mut a = cms.get("a").await.unwrap();
        a.data.as_mut().unwrap().insert("k".into(), "2".into());
        let updated = cms.replace("a", &pp, &a).await.unwrap();
        assert_ne!(updated.resource_version(), a.resource_version());
        let stale = api_status(cms.replace("a", &pp, &a).await.unwrap_err());
        assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

        // Invalid name, missing namespace.
        let bad = api_status(
            cms.create(&pp, &cm("Bad_Name", json!({}), json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!((bad.code, bad.reason.as_str()), (422, "Invalid"));
        let nowhere: Api<ConfigMap> = Api::namespaced(client.clone(), "missing");
        let nf = api_status(
            nowhere
                .create(&pp, &cm("x", json!({}), json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (nf.code, nf.message.as_str()),
            (404, "namespaces \"missing\" not found")
        );

        // Delete twice.
        cms.delete("c", &DeleteParams::default()).await.unwrap();
        let again = api_status(cms.delete("c", &DeleteParams::default()).await.unwrap_err());
        assert_eq!(again.code, 404);
        assert_eq!(api_status(cms.get("c").await.unwrap_err()).code, 404);
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    in_namespace("t2", async |_, _, cms| {
        let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": v}});
        let first = cms.patch("ssa", &PatchParams::apply("mgr-one"), &Patch::Apply(cfg("1"))).await.unwrap();
        assert_eq!(first.data.unwrap()["a"], "1");
        // Same value from another manager: shared, no conflict.
        cms.patch("ssa", &PatchParams::apply("mgr-two"), &Patch::Apply(cfg("1"))).await.unwrap();
        let conflict = api_status(cms.patch("ssa", &PatchParams::apply("mgr-three"), &Patch::Apply(cfg("2"))).await.unwrap_err());
        assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
        assert!(conflict.message.starts_with("Apply failed with 2 conflicts: conflicts with \"mgr-one\":"), "{}", conflict.message);
        let forced = cms.patch("ssa", &PatchParams::apply("mgr-three").force(), &Patch::Apply(cfg("2"))).await.unwrap();
        assert_eq!(forced.data.as_ref().unwrap()["a"], "2");
        let owners: Vec<String> = forced
            .managed_fields()
            .iter()
            .filter(|m| m.fields_v1.as_ref().is_some_and(|f| f.0.to_string().contains("f:a")))
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(owners, ["mgr-three"]);
        // Dry run: answered, not stored.
        let dry = cms
            .patch("ssa", &PatchParams::apply("mgr-three").dry_run(), &Patch::Apply(cfg("3")))
            .await
            .unwrap();
        assert_eq!(dry.data.unwrap()["a"], "3");
        assert_eq!(cms.get("ssa").await.unwrap().data.unwrap()["a"], "2");
    })
    .await;
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    in_namespace("t3", async |_, _, cms| {
        create(&cms, cm("p", json!({"x": "1"}), json!({"k": "v"}))).await;
        let merged = merge(&cms, "p", json!({"data": {"extra": "e", "k": null}})).await;
        assert_eq!(
            merged.data.clone().unwrap().into_iter().collect::<Vec<_>>(),
            [("extra".into(), "e".into())]
        );
        let ops: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/data/k", "value": "again"}]))
                .unwrap();
        let patched = cms
            .patch("p", &PatchParams::default(), &Patch::Json::<()>(ops))
            .await
            .unwrap();
        assert_eq!(patched.data.unwrap()["k"], "again");
        let failing: json_patch::Patch =
            serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "nope"}]))
                .unwrap();
        let err = api_status(
            cms.patch("p", &PatchParams::default(), &Patch::Json::<()>(failing))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, 422);
        let smp = cms
            .patch(
                "p",
                &PatchParams::default(),
                &Patch::Strategic(json!({"metadata": {"labels": {"y": "2"}}})),
            )
            .await
            .unwrap();
        assert_eq!(smp.labels().get("y").map(String::as_str), Some("2"));
        assert_eq!(smp.labels().get("x").map(String::as_str), Some("1"));
    })
    .await;
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "widgets.test.gwtest.dev"},
        "spec": {"group": "test.gwtest.dev", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 1, "default": 1},
                        "color": {"type": "string", "enum": ["red", "blue"]}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}}))
    .unwrap()
}

#[tokio::test]
async fn crd_discovery_dynamic_objects_and_status() {
    in_namespace("t4", async |_, client, _| {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &widget_crd()).await.unwrap();
        let established = crds.get("widgets.test.gwtest.dev").await.unwrap();
        let conds = established.status.unwrap().conditions.unwrap();
        assert!(conds.iter().any(|c| c.type_ == "Established" && c.status == "True"));

        // The new kind is in discovery right away.
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        let (ar, caps) = discovery
            .groups()
            .find(|g| g.name() == "test.gwtest.dev")
            .and_then(|g| g.recommended_kind("Widget"))
            .expect("Widget discovered");
        assert_eq!(ar.plural, "widgets");
        assert!(caps.subresources.iter().any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"), "{caps:?}");

        let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "t4", &ar);
        let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "test.gwtest.dev/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"color": "red"}}))
        .unwrap();
        let created = widgets.create(&PostParams::default(), &w).await.unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        assert_eq!(created.data["spec"]["size"], 1, "schema default applied");

        // Schema validation.
        let mut bad = w.clone();
        bad.metadata.name = Some("w2".into());
        bad.data["spec"]["color"] = json!("green");
        let invalid = api_status(widgets.create(&PostParams::default(), &bad).await.unwrap_err());
        assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
        assert!(invalid.message.contains("spec.color: Unsupported value: \"green\""), "{}", invalid.message);

        // Status writes leave generation alone; spec changes bump it; status via main is ignored.
        let st = widgets
            .patch_status("w1", &PatchParams::default(), &Patch::Merge(json!({"status": {"ready": true}})))
            .await
            .unwrap();
        assert_eq!(st.metadata.generation, Some(1));
        assert_eq!(st.data["status"]["ready"], true);
        let spec = merge(&widgets, "w1", json!({"spec": {"size": 3}, "status": {"ready": false}})).await;
        assert_eq!(spec.metadata.generation, Some(2));
        assert_eq!(spec.data["status"]["ready"], true);
        let ssa = widgets
            .patch_status(
                "w1",
                &PatchParams::apply("status-writer"),
                &Patch::Apply(json!({"apiVersion": "test.gwtest.dev/v1", "kind": "Widget", "metadata": {"name": "w1"},
                    "status": {"observedGeneration": 2}})),
            )
            .await
            .unwrap();
        assert_eq!(ssa.data["status"]["observedGeneration"], 2);
        assert_eq!(ssa.metadata.generation, Some(2));

        // Deleting the CRD removes the kind and its objects.
        crds.delete("widgets.test.gwtest.dev", &DeleteParams::default()).await.unwrap();
        wait_gone(&crds, "widgets.test.gwtest.dev", "the CRD went away").await;
        let gone = Discovery::new(client.clone()).run().await.unwrap();
        assert!(gone.groups().all(|g| g.name() != "test.gwtest.dev"));
        assert_eq!(api_status(widgets.get("w1").await.unwrap_err()).code, 404);
    })
    .await;
}

#[tokio::test]
async fn watcher_sees_changes_and_recovers_from_expired() {
    in_namespace("t5", async |server, _, cms| {
        create(&cms, cm("before", json!({}), json!({}))).await;
        let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
        assert_eq!(initial_names(&mut stream).await, ["before"]);
        create(&cms, cm("w", json!({}), json!({"v": "1"}))).await;
        merge(&cms, "w", json!({"data": {"v": "2"}})).await;
        cms.delete("w", &DeleteParams::default()).await.unwrap();
        let mut changes = Vec::new();
        while changes.len() < 3 {
            match next(&mut stream).await.expect("open").unwrap() {
                watcher::Event::Apply(c) => changes.push(format!("apply {}", c.data.unwrap()["v"])),
                watcher::Event::Delete(c) => changes.push(format!("delete {}", c.name_any())),
                _ => {}
            }
        }
        assert_eq!(changes, ["apply 1", "apply 2", "delete w"]);

        // History compaction: the open watch gets 410 Expired; the watcher re-lists and goes on.
        server.compact_history();
        create(&cms, cm("after", json!({}), json!({}))).await;
        let mut expired = false;
        let mut relisted = Vec::new();
        loop {
            match next(&mut stream).await.expect("open") {
                Err(watcher::Error::WatchError(s)) => {
                    assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
                    expired = true;
                }
                Err(other) => panic!("unexpected watcher error {other}"),
                Ok(watcher::Event::InitApply(c)) => relisted.push(c.name_any()),
                Ok(watcher::Event::InitDone) => break,
                Ok(_) => {}
            }
        }
        assert!(expired, "the watcher saw 410 Expired");
        relisted.sort();
        assert_eq!(relisted, ["after", "before"]);
        create(&cms, cm("later", json!({}), json!({}))).await;
        assert_eq!(next_applied(&mut stream).await, "later");
    })
    .await;
}

#[tokio::test]
async fn streaming_list_and_metadata_watchers() {
    in_namespace("t7", async |_, client, cms| {
        for n in ["a", "b"] {
            create(&cms, cm(n, json!({}), json!({}))).await;
        }
        // sendInitialEvents: the state as ADDED events, then a BOOKMARK marking its end.
        let mut streaming =
            watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
        assert_eq!(initial_names(&mut streaming).await, ["a", "b"]);
        let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "t7");
        let mut meta = watcher(metas, watcher::Config::default()).boxed();
        assert_eq!(initial_names(&mut meta).await, ["a", "b"]);
        create(&cms, cm("c", json!({}), json!({}))).await;
        assert_eq!(next_applied(&mut streaming).await, "c");
        assert_eq!(next_applied(&mut meta).await, "c");
    })
    .await;
}

#[tokio::test]
async fn raw_watch_bookmarks_selectors_and_shutdown() {
    bounded(async {
        let (server, _, cms) = start_in("t6", true).await;
        create(&cms, cm("x", json!({"sel": "yes"}), json!({}))).await;
        let list = cms.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap();
        let wp = WatchParams::default().labels("sel=yes").timeout(3);
        let mut events = cms.watch(&wp, &rv).await.unwrap().boxed();
        // Entering and leaving the selection: ADDED, then DELETED while the object still exists.
        create(&cms, cm("y", json!({}), json!({}))).await;
        merge(&cms, "y", json!({"metadata": {"labels": {"sel": "yes"}}})).await;
        merge(&cms, "y", json!({"metadata": {"labels": {"sel": "no"}}})).await;
        let mut kinds = Vec::new();
        let mut bookmarks = 0;
        while let Some(ev) = next(&mut events).await {
            match ev.unwrap() {
                WatchEvent::Added(c) => kinds.push(format!("ADDED {}", c.name_any())),
                WatchEvent::Modified(c) => kinds.push(format!("MODIFIED {}", c.name_any())),
                WatchEvent::Deleted(c) => kinds.push(format!("DELETED {}", c.name_any())),
                WatchEvent::Bookmark(_) => bookmarks += 1,
                WatchEvent::Error(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(kinds, ["ADDED y", "DELETED y"]);
        assert!(bookmarks >= 1, "bookmarks are sent");

        // A watch open while the server shuts down ends cleanly.
        let mut open = cms
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        assert!(matches!(
            next(&mut open).await,
            Some(Ok(WatchEvent::Added(_)))
        ));
        let shutdown = tokio::spawn(server.shutdown());
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match open.next().await {
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the watch ended at shutdown");
        tokio::time::timeout(Duration::from_secs(10), shutdown)
            .await
            .expect("shutdown finished")
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn namespace_deletion_lifecycle() {
    in_namespace("doomed", async |_, client, cms| {
        let nss: Api<Namespace> = Api::all(client.clone());
        create(&cms, cm("plain", json!({}), json!({}))).await;
        let mut held = cm("held", json!({}), json!({}));
        held.metadata.finalizers = Some(vec!["test.gwtest.dev/hold".into()]);
        create(&cms, held).await;

        let deleting = nss.delete("doomed", &DeleteParams::default()).await.unwrap();
        let ns = deleting.left().expect("the namespace is returned");
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
        assert!(ns.metadata.deletion_timestamp.is_some());
        // Contents go; the finalizer holds its object (marked deleting) and the namespace.
        wait_gone(&cms, "plain", "the namespace's contents went away").await;
        let h = cms.get("held").await.unwrap();
        assert!(h.metadata.deletion_timestamp.is_some());
        let refused = api_status(cms.create(&PostParams::default(), &cm("new", json!({}), json!({}))).await.unwrap_err());
        assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            refused.message,
            "configmaps \"new\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
        );
        assert!(nss.get_opt("doomed").await.unwrap().is_some());
        // Writing to a Terminating namespace (its annotations) does not end it.
        let patched = merge(&nss, "doomed", json!({"metadata": {"annotations": {"a": "b"}}})).await;
        assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Terminating"));
        assert!(nss.get_opt("doomed").await.unwrap().is_some());
        assert!(cms.get_opt("held").await.unwrap().is_some());
        // Removing the last finalizer deletes the object, then the namespace goes.
        merge(&cms, "held", json!({"metadata": {"finalizers": null}})).await;
        wait_gone(&nss, "doomed", "the namespace went away").await;
        assert!(cms.get_opt("held").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn kubeconfig_works_over_tls_and_plain_http() {
    bounded(async {
        init_crypto();
        for tls in [true, false] {
            let server = ApiServer::start(ApiServerConfig {
                tls,
                token: Some("s3cr3t".into()),
                ..Default::default()
            })
            .await
            .unwrap();
            assert_eq!(server.token(), "s3cr3t");
            assert!(server.url().starts_with(if tls {
                "https://127.0.0.1:"
            } else {
                "http://127.0.0.1:"
            }));
            let kc = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .unwrap();
            assert_eq!(cfg.default_namespace, "default");
            let client = Client::try_from(cfg).unwrap();
            let names: Vec<String> = Api::<Namespace>::all(client)
                .list(&ListParams::default())
                .await
                .unwrap()
                .iter()
                .map(|n| n.name_any())
                .collect();
            assert_eq!(
                names,
                ["default", "kube-node-lease", "kube-public", "kube-system"]
            );
            server.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn apply_manifest_registers_crds_in_process() {
    bounded(async {
        let (server, client) = start(true).await;
        server.apply_manifest(serde_json::to_value(widget_crd()).unwrap()).unwrap();
        server
            .apply_manifest(json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "test.gwtest.dev/v1", "kind": "Widget", "metadata": {"name": "seeded"}, "spec": {"size": 2}}]}))
            .unwrap();
        let ar = ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("test.gwtest.dev", "v1", "Widget"),
            "widgets",
        );
        let widgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
        let w = widgets.get("seeded").await.unwrap();
        assert_eq!(w.data["spec"]["size"], 2);
        assert_eq!(w.managed_fields()[0].manager.as_deref(), Some("gwtest-sandbox"));
        assert!(server.apply_manifest(json!({"apiVersion": "nope/v1", "kind": "Nope", "metadata": {"name": "x"}})).is_err());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn finalizers_and_owner_reference_garbage_collection() {
    in_namespace("t8", async |_, _, cms| {
        let owner = create(&cms, cm("owner", json!({}), json!({}))).await;
        let mut dependent = cm("dependent", json!({}), json!({}));
        dependent.metadata.owner_references = Some(vec![
            serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.uid().unwrap()}),
            )
            .unwrap(),
        ]);
        create(&cms, dependent).await;
        let mut guarded = owner.clone();
        guarded.metadata.finalizers = Some(vec!["test.gwtest.dev/guard".into()]);
        let guarded = cms
            .replace("owner", &PostParams::default(), &guarded)
            .await
            .unwrap();

        // A finalizer keeps the owner (marked deleting), and so its dependent.
        let marked = delete_held(&cms, "owner").await;
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert!(cms.get_opt("owner").await.unwrap().is_some());
        assert!(cms.get_opt("dependent").await.unwrap().is_some());
        // A second delete changes nothing.
        let again = delete_held(&cms, "owner").await;
        assert_eq!(again.resource_version(), marked.resource_version());
        assert_ne!(marked.resource_version(), guarded.resource_version());

        // Removing the finalizer deletes the owner; its dependent is collected.
        merge(&cms, "owner", json!({"metadata": {"finalizers": []}})).await;
        assert!(cms.get_opt("owner").await.unwrap().is_none());
        wait_gone(&cms, "dependent", "the dependent was collected").await;
    })
    .await;
}

/// A watch from a version the server has not reached waits for it (a write that reaches it is
/// delivered), or ends with 504 ResourceVersionTooLarge after 3 s, as the real watch cache does.
/// A server restarted on the same address numbers its new history above the old one, so a
/// client resuming from the old server's version is told 410 Expired and re-lists.
#[tokio::test]
async fn watch_from_a_future_or_previous_servers_version() {
    bounded(async {
        let (server, _, cms) = start_in("fut", false).await;
        let rv: u64 = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap()
            .parse()
            .unwrap();

        // One ahead: the next write reaches it and the watch goes on from there.
        let wp = WatchParams::default().timeout(5);
        let mut ahead = cms.watch(&wp, &(rv + 1).to_string()).await.unwrap().boxed();
        create(&cms, cm("a", json!({}), json!({}))).await;
        create(&cms, cm("b", json!({}), json!({}))).await;
        match next(&mut ahead).await {
            Some(Ok(WatchEvent::Added(c))) => assert_eq!(c.name_any(), "b"),
            other => panic!("expected ADDED b, got {other:?}"),
        }

        // Far ahead: an ERROR event after the wait.
        let started = std::time::Instant::now();
        let mut far = cms
            .watch(&wp, &(rv + 1000).to_string())
            .await
            .unwrap()
            .boxed();
        match next(&mut far).await {
            Some(Ok(WatchEvent::Error(e))) => {
                assert_eq!((e.code, e.reason.as_str()), (504, "Timeout"));
                assert_eq!(
                    e.message,
                    format!(
                        "Too large resource version: {}, current: {}",
                        rv + 1000,
                        rv + 2
                    )
                );
            }
            other => panic!("expected an ERROR event, got {other:?}"),
        }
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "it waited first"
        );

        // The same address again, empty: the old version is older than anything it has.
        let addr = server.local_addr();
        server.shutdown().await;
        let mut again = None;
        for _ in 0..50 {
            match ApiServer::start(ApiServerConfig {
                addr,
                tls: false,
                token: None,
                ..Default::default()
            })
            .await
            {
                Ok(s) => {
                    again = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let again = again.expect("listening on the same address again");
        let client = Client::try_from(again.kube_config()).expect("client");
        make_ns(&client, "fut").await;
        let cms: Api<ConfigMap> = Api::namespaced(client, "fut");
        let mut old = cms.watch(&wp, &(rv + 2).to_string()).await.unwrap().boxed();
        match next(&mut old).await {
            Some(Ok(WatchEvent::Error(e))) => {
                assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
            }
            other => panic!("expected 410 Expired, got {other:?}"),
        }
        again.shutdown().await;
    })
    .await;
}
