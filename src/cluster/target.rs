//! What a step's `resource:` reference points at, with variables substituted and the
//! namespace defaulted to the test's.

use crate::suite::model::ResourceRef;
use crate::suite::vars::{VarError, Vars};

/// A resource reference ready to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub name: Option<String>,
    /// Explicit, or the test's namespace; ignored for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Kubernetes label-selector syntax.
    pub selector: Option<String>,
}

impl Target {
    pub fn from_ref(
        r: &ResourceRef,
        vars: &Vars,
        default_ns: Option<&str>,
    ) -> Result<Target, VarError> {
        let selector = r.selector.as_ref().map(|s| s.expand(vars)).transpose()?;
        Ok(Target {
            api_version: vars.expand(&r.api_version)?,
            kind: vars.expand(&r.kind)?,
            name: r.name.as_ref().map(|n| vars.expand(n)).transpose()?,
            namespace: match &r.namespace {
                Some(n) => Some(vars.expand(n)?),
                None => default_ns.map(str::to_owned),
            },
            selector,
        })
    }

    /// `Upstream example-svc in gwtest-x` / `Upstream [app=web] in gwtest-x`
    pub fn describe(&self, namespaced: bool) -> String {
        let what = match (&self.name, &self.selector) {
            (Some(n), _) => n.clone(),
            (None, Some(s)) => format!("[{s}]"),
            (None, None) => "*".into(),
        };
        match (&self.namespace, namespaced) {
            (Some(ns), true) => format!("{} {what} in {ns}", self.kind),
            _ => format!("{} {what}", self.kind),
        }
    }

    /// A kubectl command that shows the object(s).
    pub fn kubectl_get(&self, plural: &str, group: &str, namespaced: bool, flags: &str) -> String {
        let res = if group.is_empty() {
            plural.to_owned()
        } else {
            format!("{plural}.{group}")
        };
        let mut cmd = format!("kubectl{flags} get {res}");
        match (&self.name, &self.selector) {
            (Some(n), _) => cmd.push_str(&format!(" {n}")),
            (None, Some(s)) => cmd.push_str(&format!(" -l {}", crate::util::shell_quote(s))),
            _ => {}
        }
        if namespaced && let Some(ns) = &self.namespace {
            cmd.push_str(&format!(" -n {ns}"));
        }
        cmd.push_str(" -o yaml");
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn target(yaml: &str, vars: &Vars, ns: Option<&str>) -> Result<Target, VarError> {
        let r: ResourceRef = serde_saphyr::from_str(yaml).expect("reference parses");
        Target::from_ref(&r, vars, ns)
    }

    #[test]
    fn references_expand_variables_and_default_the_namespace() {
        let mut vars = Vars::new();
        vars.set("n", "web");
        vars.set("tier", "front");
        let t = target(
            "{apiVersion: v1, kind: ConfigMap, name: 'cfg-${n}'}",
            &vars,
            Some("gwtest-t-abc123"),
        )
        .unwrap();
        assert_eq!(t.name.as_deref(), Some("cfg-web"));
        assert_eq!(t.namespace.as_deref(), Some("gwtest-t-abc123"));
        assert_eq!(t.describe(true), "ConfigMap cfg-web in gwtest-t-abc123");
        // Cluster-scoped kinds are never described (or fetched) with a namespace.
        assert_eq!(t.describe(false), "ConfigMap cfg-web");

        let t = target(
            "{apiVersion: v1, kind: Service, namespace: infra, selector: {app: '${n}', tier: '${tier}'}}",
            &vars,
            Some("gwtest-t-abc123"),
        )
        .unwrap();
        assert_eq!(t.namespace.as_deref(), Some("infra"));
        assert_eq!(t.selector.as_deref(), Some("app=web,tier=front"));
        assert_eq!(t.describe(true), "Service [app=web,tier=front] in infra");

        let t = target(
            "{apiVersion: v1, kind: Pod, selector: 'app in (${n}, db)'}",
            &vars,
            None,
        )
        .unwrap();
        assert_eq!(t.selector.as_deref(), Some("app in (web, db)"));
        assert_eq!(t.namespace, None);

        let err = target("{apiVersion: v1, kind: Pod, name: '${nope}'}", &vars, None).unwrap_err();
        assert!(err.message.contains("${nope}"), "{}", err.message);
    }

    #[test]
    fn kubectl_commands_name_the_resource_group_and_namespace() {
        let vars = Vars::new();
        let t = target(
            "{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}",
            &vars,
            Some("ns1"),
        )
        .unwrap();
        assert_eq!(
            t.kubectl_get(
                "upstreams",
                "demo.gwtest.dev",
                true,
                &crate::cluster::kubectl_flags(Some(Path::new("/k/config")), None)
            ),
            "kubectl --kubeconfig /k/config get upstreams.demo.gwtest.dev u -n ns1 -o yaml"
        );
        let t = target(
            "{apiVersion: v1, kind: ConfigMap, selector: 'app in (a, b)'}",
            &vars,
            Some("ns1"),
        )
        .unwrap();
        assert_eq!(
            t.kubectl_get("configmaps", "", true, ""),
            "kubectl get configmaps -l 'app in (a, b)' -n ns1 -o yaml"
        );
        let t = target(
            "{apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, name: c}",
            &vars,
            Some("ns1"),
        )
        .unwrap();
        assert_eq!(
            t.kubectl_get("gatewayclasses", "gateway.networking.k8s.io", false, ""),
            "kubectl get gatewayclasses.gateway.networking.k8s.io c -o yaml"
        );
    }
}
