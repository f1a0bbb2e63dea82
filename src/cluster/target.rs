//! What a step's `resource:` reference points at, with variables substituted and the
//! namespace defaulted to the test's.

use crate::suite::model::{ResourceRef, Selector};
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
        let selector = match &r.selector {
            None => None,
            Some(Selector::Expr(t)) => Some(vars.expand(t)?),
            Some(Selector::Labels(m)) => Some(
                m.iter()
                    .map(|(k, v)| vars.expand(v).map(|v| format!("{}={v}", k.value)))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
            ),
        };
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
    pub fn kubectl_get(
        &self,
        plural: &str,
        group: &str,
        namespaced: bool,
        kubeconfig: Option<&std::path::Path>,
    ) -> String {
        let res = if group.is_empty() {
            plural.to_owned()
        } else {
            format!("{plural}.{group}")
        };
        let mut cmd = format!("kubectl{} get {res}", super::kubeconfig_flag(kubeconfig));
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
