//! The suite language (DESIGN §1) as typed serde models. The same types produce the JSON
//! Schema (`gwtest schema`), so the editor schema and the parser cannot disagree.
//!
//! Keys are kebab-case (`max-interval`); Kubernetes references keep Kubernetes spelling
//! (`apiVersion`). Every struct rejects unknown keys.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::de::located;
use super::spanned::{
    BareString, CelExpr, Dur, JsonPathExpr, Node, Pattern, PositiveDur, Spanned, SpannedMap,
    Template, located_any, schema_as, spanned_any,
};

pub const API_VERSION: &str = "gwtest/v1alpha1";

/// Just enough of a document to check `apiVersion` and `kind` before the full parse.
#[derive(Debug, Deserialize)]
pub struct DocHeader {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
}

/// `suite.yaml`: a suite's name, variables, fixtures, defaults and namespace mode. The
/// `*.test.yaml` files next to it hold its tests.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "gwtest Suite")]
pub struct SuiteDoc {
    /// Always `gwtest/v1alpha1`.
    #[serde(rename = "apiVersion")]
    #[schemars(schema_with = "api_version_schema")]
    pub api_version: Spanned<String>,
    /// Always `Suite` in suite.yaml.
    #[schemars(schema_with = "suite_kind_schema")]
    pub kind: Spanned<String>,
    /// The suite's name in reports and filters (default: the directory name).
    pub name: Option<Spanned<String>>,
    /// A sentence for people reading the suite.
    pub description: Option<String>,
    /// Labels every test of the suite gets (select with `--label`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Variables for every test of the suite: a value, or `{from: ...}` read from the cluster
    /// once the fixtures are applied. `--var` overrides them.
    #[serde(default)]
    pub vars: SpannedMap<VarDef>,
    /// Manifest files (relative to suite.yaml) applied before the suite's first test and
    /// removed after its last.
    #[serde(default)]
    pub fixtures: Vec<Template>,
    /// Defaults of the retry and deadline keys for every step of the suite.
    #[serde(default)]
    pub defaults: Defaults,
    /// Where tests run: `per-test` (default: a new namespace per test), `per-suite` (one
    /// namespace shared by the suite's tests), or the name of an existing namespace.
    #[serde(default)]
    #[schemars(schema_with = "namespace_schema")]
    pub namespace: Option<Spanned<String>>,
    /// Evidence collected for every failed test try, before cleanup, into the failure bundle:
    /// `logs`, `events`, `get`, `exec`, each bounded by its `timeout`. The events of the
    /// test's namespace are collected even when not listed.
    #[serde(default)]
    pub diagnostics: Vec<Spanned<Collector>>,
    /// Steps for every test of the suite that has no `catch:` of its own: run when a step of
    /// the test failed, after `--pause-on-failure` and before cleanup.
    #[serde(default)]
    pub catch: Option<Vec<Spanned<Step>>>,
    /// Steps for every test of the suite that has no `finally:` of its own: always run, after
    /// the steps (and after `catch`), before cleanup.
    #[serde(default)]
    pub finally: Option<Vec<Spanned<Step>>>,
}

/// The built-in defaults of every retry and deadline key; each may be overridden per suite,
/// then per step.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Defaults {
    /// Deadline of one assertion step (default 30s).
    pub timeout: Option<PositiveDur>,
    /// First retry delay; doubles up to max-interval (default 100ms).
    pub interval: Option<PositiveDur>,
    /// Longest retry delay (default 2s).
    pub max_interval: Option<PositiveDur>,
    /// One HTTP attempt: connect + response (default 10s).
    pub attempt_timeout: Option<PositiveDur>,
    /// Successes in a row an assertion needs (default 1; request steps 3).
    #[serde(default, deserialize_with = "positive_count")]
    #[schemars(range(min = 1))]
    pub consecutive: Option<u32>,
    /// Hard deadline of one whole test, cleanup excluded (default 5m).
    pub test_timeout: Option<PositiveDur>,
    /// Deadline of a test's cleanup (default 60s).
    pub cleanup_timeout: Option<PositiveDur>,
}

/// A suite variable: a plain value or one read from the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum VarDef {
    Value(Node),
    From(Spanned<VarFrom>),
    /// `127.0.0.1:PORT` of a local listener tunnelled to a pod through the API server.
    PortForward(Spanned<PortForward>),
}

impl VarDef {
    /// Whether the value comes from the cluster (read or forwarded) once the fixtures are
    /// applied.
    pub fn from_cluster(&self) -> bool {
        !matches!(self, VarDef::Value(_))
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VarFrom {
    /// The object to read (by `name`).
    pub resource: Spanned<ResourceRef>,
    /// JSONPath into the object, e.g. `$.status.addresses[0].value`.
    pub path: JsonPathExpr,
    /// How long to wait until the field exists (default: the suite's timeout).
    pub timeout: Option<PositiveDur>,
}

/// A local port tunnelled through the API server (`pods/portforward`) to a ready pod: of a
/// Service (`service`) or a named pod (`pod`). The variable is `127.0.0.1:PORT`.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(transform = one_target_transform)]
pub struct PortForward {
    /// A Service: each connection goes to a ready pod its selector picks, on the pod port
    /// its `port` maps to; another ready pod takes over when that one goes.
    pub service: Option<Template>,
    /// A pod, by name (or give `service`).
    pub pod: Option<Template>,
    /// The namespace (default: the suite's namespace, with `namespace: per-suite` or a fixed
    /// one).
    pub namespace: Option<Template>,
    /// The Service's port (with `service`), or the pod's port (with `pod`).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// How long to wait for a ready pod (default: the suite's timeout, 30s).
    pub timeout: Option<PositiveDur>,
}

impl<'de> Deserialize<'de> for PortForward {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct Keys {
            service: Option<Template>,
            pod: Option<Template>,
            namespace: Option<Template>,
            port: u16,
            timeout: Option<PositiveDur>,
        }
        let k = Keys::deserialize(d)?;
        if k.port == 0 {
            return Err(de::Error::custom("port-forward: `port` must be 1 to 65535"));
        }
        match (&k.service, &k.pod) {
            (Some(_), Some(_)) => Err(de::Error::custom(
                "port-forward: give `service` or `pod`, not both",
            )),
            (None, None) => Err(de::Error::custom(
                "port-forward needs `service` (a ready pod behind it) or `pod` (by name)",
            )),
            _ => Ok(PortForward {
                service: k.service,
                pod: k.pod,
                namespace: k.namespace,
                port: k.port,
                timeout: k.timeout,
            }),
        }
    }
}

fn one_target_transform(schema: &mut Schema) {
    require_one_of(schema, &["service", "pod"]);
    schema.insert("required".into(), serde_json::json!(["port"]));
}

/// The schema of a map that needs exactly one of `keys`: `oneOf` each of them required.
fn require_one_of(schema: &mut Schema, keys: &[&str]) {
    let one_of: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| serde_json::json!({ "required": [k] }))
        .collect();
    schema.insert("oneOf".into(), serde_json::Value::Array(one_of));
}

impl<'de> Deserialize<'de> for VarDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Default)]
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VarDef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value, {from: {resource: ..., path: ...}} or {port-forward: {...}}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<VarDef, E> {
                Ok(VarDef::Value(Node::Null))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<VarDef, E> {
                Ok(VarDef::Value(Node::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VarDef, E> {
                Ok(VarDef::Value(Node::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VarDef, E> {
                Ok(VarDef::Value(
                    i64::try_from(v)
                        .map(Node::Int)
                        .unwrap_or(Node::Float(v as f64)),
                ))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<VarDef, E> {
                Ok(VarDef::Value(Node::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VarDef, E> {
                Ok(VarDef::Value(Node::Str(Template::literal(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<VarDef, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = a.next_element::<Spanned<Node>>()? {
                    items.push(n.located());
                }
                Ok(VarDef::Value(Node::Seq(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<VarDef, A::Error> {
                let Some(first) = a.next_key::<Spanned<String>>()? else {
                    return Ok(VarDef::Value(Node::Map(Vec::new())));
                };
                if first.value == "from" {
                    let from = a.next_value::<Spanned<VarFrom>>()?;
                    if let Some(k) = a.next_key::<Spanned<String>>()? {
                        return Err(located(
                            k.loc,
                            format_args!(
                                "unknown key `{}` next to `from`: a variable read from the \
                                 cluster has only `from: {{resource, path, timeout}}`",
                                k.value
                            ),
                        ));
                    }
                    return Ok(VarDef::From(from));
                }
                if first.value == "port-forward" {
                    let pf = a.next_value::<Spanned<PortForward>>()?;
                    if let Some(k) = a.next_key::<Spanned<String>>()? {
                        return Err(located(
                            k.loc,
                            format_args!(
                                "unknown key `{}` next to `port-forward`: a forwarded variable \
                                 has only `port-forward: {{service|pod, namespace, port, \
                                 timeout}}`",
                                k.value
                            ),
                        ));
                    }
                    return Ok(VarDef::PortForward(pf));
                }
                // A plain map value: read the rest as nodes.
                let mut entries = vec![(first, a.next_value::<Spanned<Node>>()?.located())];
                while let Some(k) = a.next_key::<Spanned<String>>()? {
                    if entries.iter().any(|(e, _)| e.value == k.value) {
                        return Err(located(k.loc, format_args!("duplicate key `{}`", k.value)));
                    }
                    let v = a.next_value::<Spanned<Node>>()?.located();
                    entries.push((k, v));
                }
                Ok(VarDef::Value(Node::Map(entries)))
            }
        }
        located_any::<V, D>(d)
    }
}

impl BareString for VarDef {
    fn bare_string(&mut self) -> Option<&mut Template> {
        match self {
            VarDef::Value(n) => n.bare_string(),
            _ => None,
        }
    }
}

impl JsonSchema for VarDef {
    fn schema_name() -> Cow<'static, str> {
        "VarDef".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let from = g.subschema_for::<VarFrom>();
        let forward = g.subschema_for::<PortForward>();
        json_schema!({
            "anyOf": [
                { "type": "object",
                  "properties": { "from": {
                      "allOf": [from],
                      "description": "Read the value from a cluster object once the fixtures are applied."
                  } },
                  "required": ["from"], "additionalProperties": false },
                { "type": "object",
                  "properties": { "port-forward": {
                      "allOf": [forward],
                      "description": "127.0.0.1:PORT of a local listener tunnelled through the API server to a ready pod (of a Service, or by name)."
                  } },
                  "required": ["port-forward"], "additionalProperties": false },
                { "description": "A plain value.",
                  "not": { "type": "object",
                           "anyOf": [
                               { "required": ["from"],
                                 "properties": { "from": { "description": "Not a plain value: a value read from the cluster." } } },
                               { "required": ["port-forward"],
                                 "properties": { "port-forward": { "description": "Not a plain value: a port-forward." } } }
                           ] } }
            ]
        })
    }
}

/// A `*.test.yaml` document: one test, its steps run in order.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "gwtest Test")]
pub struct TestDoc {
    /// Always `gwtest/v1alpha1`.
    #[serde(rename = "apiVersion")]
    #[schemars(schema_with = "api_version_schema")]
    pub api_version: Spanned<String>,
    /// Always `Test` in a *.test.yaml file.
    #[schemars(schema_with = "test_kind_schema")]
    pub kind: Spanned<String>,
    /// The test's name, unique in its suite; it is also part of the test's namespace
    /// (`gwtest-<name>-xxxxxx`).
    pub name: Spanned<String>,
    /// A sentence for people reading the test.
    pub description: Option<String>,
    /// Labels to select the test with `--label` (the suite's labels are added).
    #[serde(default)]
    pub labels: Vec<String>,
    /// This test's test-timeout: a hard deadline for the whole test, cleanup excluded
    /// (default: the suite's `defaults.test-timeout`, 5m).
    pub timeout: Option<PositiveDur>,
    /// Re-runs of the whole test on failure (default 0); passing on a re-run makes it flaky.
    pub retries: Option<u32>,
    /// The steps, run in order; the first failing step fails the test.
    pub steps: Vec<Spanned<Step>>,
    /// Steps run when a step of the test failed, after `--pause-on-failure` and before
    /// cleanup, each whatever the one before did; they never change the test's outcome
    /// (default: the suite's `catch`; `[]` for none).
    #[serde(default)]
    pub catch: Option<Vec<Spanned<Step>>>,
    /// Steps always run, after the steps (and after `catch`), before cleanup, each whatever
    /// the one before did; one failing fails a test that had passed (default: the suite's
    /// `finally`; `[]` for none).
    #[serde(default)]
    pub finally: Option<Vec<Spanned<Step>>>,
}

/// One step: exactly one action, plus an optional name and the retry keys. One action per
/// step holds by construction: a map with none or several action keys does not deserialize
/// (see [`StepKeys`]).
#[derive(Clone, Debug)]
pub struct Step {
    /// The step's name in reports (default: a description of its action).
    pub name: Option<String>,
    /// What the step does.
    pub action: Action,
    /// Deadline of this step (assertions: how long to keep trying; default 30s).
    pub timeout: Option<PositiveDur>,
    /// First delay between attempts; doubles up to max-interval (default 100ms).
    pub interval: Option<PositiveDur>,
    /// Longest delay between attempts (default 2s).
    pub max_interval: Option<PositiveDur>,
    /// Successes in a row the assertion needs (default 1; request steps 3).
    pub consecutive: Option<u32>,
    /// After passing, the assertion must keep passing this long.
    pub hold: Option<PositiveDur>,
}

/// A step's action: the one key that says what the step does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Create or update objects by server-side apply.
    Apply(ApplySpec),
    /// An object (or the objects of a selector) eventually has these conditions and fields,
    /// or is absent.
    Assert(AssertSpec),
    /// An HTTP request whose response eventually meets `expect`.
    Request(RequestSpec),
    /// The spans the system under test emitted.
    Spans(SpansSpec),
    /// A JSON merge patch on one object.
    Patch(PatchSpec),
    /// Delete an object and wait until it is gone.
    Delete(DeleteSpec),
    /// Run a program (argv, no shell); an assertion when it has `expect`.
    Exec(ExecSpec),
    /// Wait this long.
    Sleep(Dur),
    /// A breakpoint with a message, honoured only with `--pause`.
    Pause(String),
}

// A step map as written, every action key optional: the serde and JSON Schema model of a
// step. A [`Step`] is made from it once it holds exactly one action. (The doc comment below
// is the schema's description.)
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Step", transform = one_action_transform)]
/// One step: exactly one action key, plus an optional name and retry keys.
pub(crate) struct StepKeys {
    /// The step's name in reports (default: a description of its action).
    pub name: Option<String>,
    /// Action: create or update objects by server-side apply (a path, a list of paths, or
    /// `{manifest: {...}}`).
    pub apply: Option<ApplySpec>,
    /// Assertion: an object (or the objects of a selector) eventually has these conditions
    /// and fields, or is absent.
    pub assert: Option<AssertSpec>,
    /// Assertion: an HTTP request whose response eventually meets `expect`.
    pub request: Option<RequestSpec>,
    /// Assertion: the spans the system under test emitted.
    pub spans: Option<SpansSpec>,
    /// Action: a JSON merge patch on one object.
    pub patch: Option<PatchSpec>,
    /// Action: delete an object and wait until it is gone.
    pub delete: Option<DeleteSpec>,
    /// Run a program (argv, no shell); an assertion when it has `expect`.
    pub exec: Option<ExecSpec>,
    /// Wait this long.
    #[serde(default, deserialize_with = "sleep_dur")]
    pub sleep: Option<Dur>,
    /// A breakpoint with a message, honoured only with `--pause`.
    #[serde(default, deserialize_with = "pause_message")]
    pub pause: Option<String>,
    /// Deadline of this step (assertions: how long to keep trying; default 30s).
    pub timeout: Option<PositiveDur>,
    /// First delay between attempts; doubles up to max-interval (default 100ms).
    pub interval: Option<PositiveDur>,
    /// Longest delay between attempts (default 2s).
    pub max_interval: Option<PositiveDur>,
    /// Successes in a row the assertion needs (default 1; request steps 3).
    #[serde(default, deserialize_with = "positive_count")]
    #[schemars(range(min = 1))]
    pub consecutive: Option<u32>,
    /// After passing, the assertion must keep passing this long.
    pub hold: Option<PositiveDur>,
}

/// The keys of a step that tune the retry engine (assertions only, except `timeout` and
/// `interval`, which also bound an action's retries on transient API errors).
pub const RETRY_KEYS: [&str; 5] = ["timeout", "interval", "max-interval", "consecutive", "hold"];

fn sleep_dur<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dur>, D::Error> {
    match Option::<Dur>::deserialize(d)? {
        None => Err(de::Error::custom(
            "`sleep` needs a duration, e.g. `sleep: 2s`",
        )),
        Some(Dur(z)) if z.is_zero() => Err(de::Error::custom(
            "`sleep: 0s` does nothing: give a positive duration or remove the step",
        )),
        v => Ok(v),
    }
}

/// `pause:` with no message is still a pause.
fn pause_message<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

fn positive_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<u32>::deserialize(d)? {
        Some(0) => Err(de::Error::custom(
            "`consecutive: 0` would pass without a single success: give 1 or more",
        )),
        v => Ok(v),
    }
}

pub const ACTION_KEYS: [&str; 9] = [
    "apply", "assert", "request", "spans", "patch", "delete", "exec", "sleep", "pause",
];

fn one_action_transform(schema: &mut Schema) {
    require_one_of(schema, &ACTION_KEYS);
}

impl TryFrom<StepKeys> for Step {
    type Error = String;

    fn try_from(k: StepKeys) -> Result<Step, String> {
        let mut actions: Vec<Action> = Vec::with_capacity(1);
        actions.extend(k.apply.map(Action::Apply));
        actions.extend(k.assert.map(Action::Assert));
        actions.extend(k.request.map(Action::Request));
        actions.extend(k.spans.map(Action::Spans));
        actions.extend(k.patch.map(Action::Patch));
        actions.extend(k.delete.map(Action::Delete));
        actions.extend(k.exec.map(Action::Exec));
        actions.extend(k.sleep.map(Action::Sleep));
        actions.extend(k.pause.map(Action::Pause));
        if actions.len() > 1 {
            let keys: Vec<&str> = actions.iter().map(Action::key).collect();
            return Err(format!(
                "step has {} actions ({}): a step does exactly one thing; split it into {} steps",
                keys.len(),
                super::de::list(&keys),
                keys.len()
            ));
        }
        let Some(action) = actions.pop() else {
            return Err(format!(
                "step has no action: give exactly one of {}",
                super::de::list(&ACTION_KEYS)
            ));
        };
        Ok(Step {
            name: k.name,
            action,
            timeout: k.timeout,
            interval: k.interval,
            max_interval: k.max_interval,
            consecutive: k.consecutive,
            hold: k.hold,
        })
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Step::try_from(StepKeys::deserialize(d)?).map_err(de::Error::custom)
    }
}

schema_as!(Step, StepKeys);

impl Action {
    /// The action's key in a step (`request`, `assert`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            Action::Apply(_) => "apply",
            Action::Assert(_) => "assert",
            Action::Request(_) => "request",
            Action::Spans(_) => "spans",
            Action::Patch(_) => "patch",
            Action::Delete(_) => "delete",
            Action::Exec(_) => "exec",
            Action::Sleep(_) => "sleep",
            Action::Pause(_) => "pause",
        }
    }

    /// Whether the retry engine runs it as an assertion (until its expectations hold).
    pub fn is_assertion(&self) -> bool {
        match self {
            Action::Assert(_) | Action::Request(_) | Action::Spans(_) => true,
            Action::Exec(e) => e.expect.is_some(),
            _ => false,
        }
    }
}

impl Step {
    /// The action's key (`request`, `assert`, ...), for messages.
    pub fn kind(&self) -> &'static str {
        self.action.key()
    }

    /// A name for reports: the given name, or a short description of the action.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.action {
            Action::Apply(a) => format!("apply {}", a.describe()),
            Action::Assert(a) => format!("assert {}", a.resource.describe()),
            Action::Request(r) => format!(
                "{} {}",
                r.method.as_ref().map(|m| m.raw.as_str()).unwrap_or("GET"),
                r.url.raw
            ),
            Action::Spans(_) => "spans".into(),
            Action::Patch(p) => format!("patch {}", p.resource.describe()),
            Action::Delete(d) => format!("delete {}", d.resource.describe()),
            Action::Exec(e) => format!(
                "exec {}",
                e.command
                    .iter()
                    .map(|c| c.raw.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Action::Sleep(d) => format!("sleep {d}"),
            Action::Pause(m) => format!("pause: {m}"),
        }
    }

    /// Whether this step talks to a cluster (apply, assert, patch, delete).
    pub fn needs_cluster(&self) -> bool {
        matches!(
            self.action,
            Action::Apply(_) | Action::Assert(_) | Action::Patch(_) | Action::Delete(_)
        )
    }
}

// ---------------------------------------------------------------------------------------
// apply

/// `apply: PATH`, `apply: [PATH, ...]`, or `apply: {manifest: {...}}` (items of a list may
/// also be `{manifest: ...}`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApplySpec(pub Vec<ApplyItem>);

#[derive(Clone, Debug, PartialEq)]
pub enum ApplyItem {
    /// A file of one or more manifests, relative to the test file.
    File(Template),
    /// An inline manifest.
    Manifest(Spanned<Node>),
}

impl ApplySpec {
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|i| match i {
                ApplyItem::File(t) => t.raw.clone(),
                ApplyItem::Manifest(n) => {
                    let kind = match n.value.get("kind") {
                        Some(Node::Str(t)) => t.raw.clone(),
                        _ => "manifest".into(),
                    };
                    let name = n
                        .value
                        .get("metadata")
                        .and_then(|m| m.get("name"))
                        .and_then(|n| {
                            if let Node::Str(t) = n {
                                Some(t.raw.clone())
                            } else {
                                None
                            }
                        });
                    match name {
                        Some(name) => format!("{kind}/{name}"),
                        None => kind,
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Default)]
struct ApplyItemVisitor;

impl<'de> Visitor<'de> for ApplyItemVisitor {
    type Value = ApplyItem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a manifest path or {manifest: {...}}")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ApplyItem, E> {
        Ok(ApplyItem::File(Template::literal(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<ApplyItem, A::Error> {
        let mut manifest = None;
        while let Some(k) = a.next_key::<Spanned<String>>()? {
            match k.value.as_str() {
                "manifest" if manifest.is_none() => {
                    manifest = Some(a.next_value::<Spanned<Node>>()?);
                }
                "manifest" => return Err(located(k.loc, "duplicate key `manifest`")),
                other => {
                    let hint = super::de::did_you_mean(other, ["manifest"])
                        .map(|_| " (did you mean `manifest`?)")
                        .unwrap_or_default();
                    return Err(located(
                        k.loc,
                        format_args!(
                            "unknown key `{other}` in apply{hint}: expected `manifest: {{...}}`, \
                             or give a file path instead of a map"
                        ),
                    ));
                }
            }
        }
        let m = manifest.ok_or_else(|| {
            de::Error::custom("apply: missing `manifest` (an inline Kubernetes object)")
        })?;
        if !matches!(m.value, Node::Map(_)) {
            return Err(located(
                m.loc,
                "apply: `manifest` must be a map (one Kubernetes object)",
            ));
        }
        Ok(ApplyItem::Manifest(m))
    }
}

impl BareString for ApplyItem {
    fn bare_string(&mut self) -> Option<&mut Template> {
        match self {
            ApplyItem::File(t) => Some(t),
            ApplyItem::Manifest(_) => None,
        }
    }
}

/// An item of an `apply:` list, its path located.
struct LocatedApplyItem(ApplyItem);

impl<'de> Deserialize<'de> for LocatedApplyItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        located_any::<ApplyItemVisitor, D>(d).map(LocatedApplyItem)
    }
}

impl<'de> Deserialize<'de> for ApplySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Default)]
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ApplySpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a manifest path, a list of paths, or {manifest: {...}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ApplySpec, E> {
                ApplyItemVisitor.visit_str(v).map(|i| ApplySpec(vec![i]))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<ApplySpec, A::Error> {
                ApplyItemVisitor.visit_map(a).map(|i| ApplySpec(vec![i]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<ApplySpec, A::Error> {
                let mut items = Vec::new();
                while let Some(LocatedApplyItem(i)) = a.next_element()? {
                    items.push(i);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("apply: the list is empty"));
                }
                Ok(ApplySpec(items))
            }
        }
        let s = spanned_any::<V, D>(d)?;
        let mut spec = s.value;
        // A bare path's location is the node's (a list's items have their own).
        if let [ApplyItem::File(t)] = spec.0.as_mut_slice()
            && !t.loc.is_known()
        {
            t.loc = s.loc;
        }
        Ok(spec)
    }
}

impl JsonSchema for ApplySpec {
    fn schema_name() -> Cow<'static, str> {
        "Apply".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let item = serde_json::json!({
            "anyOf": [
                { "type": "string", "description": "A manifest file (relative to this file)." },
                { "type": "object",
                  "properties": { "manifest": {
                      "type": "object",
                      "description": "An inline Kubernetes object (apiVersion, kind, metadata.name, ...)."
                  } },
                  "required": ["manifest"], "additionalProperties": false }
            ]
        });
        json_schema!({
            "anyOf": [ item.clone(), { "type": "array", "items": item, "minItems": 1 } ]
        })
    }
}

// ---------------------------------------------------------------------------------------
// resource references

/// Which object(s) a step is about. `name` or `selector` (not both); `namespace` defaults to
/// the test's namespace for namespaced kinds.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceRef {
    /// The object's apiVersion, e.g. `v1` or `gateway.networking.k8s.io/v1`.
    pub api_version: Template,
    /// The object's kind, e.g. `Service`.
    pub kind: Template,
    /// One object by name (give `name` or `selector`, not both).
    pub name: Option<Template>,
    /// Default: the test's namespace, for namespaced kinds.
    pub namespace: Option<Template>,
    /// The objects with these labels: `app=web,tier in (a,b)` (Kubernetes label-selector
    /// syntax) or a map of labels that must all be equal.
    pub selector: Option<Selector>,
}

impl ResourceRef {
    pub fn describe(&self) -> String {
        let what = match (&self.name, &self.selector) {
            (Some(n), _) => n.raw.clone(),
            (None, Some(s)) => format!("[{}]", s.describe()),
            (None, None) => "*".into(),
        };
        format!("{}/{}", self.kind.raw, what)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// Kubernetes label-selector syntax.
    Expr(Template),
    /// Equality on every label.
    Labels(SpannedMap<Template>),
}

impl Selector {
    /// In Kubernetes label-selector syntax, variables substituted.
    pub fn expand(&self, vars: &super::vars::Vars) -> Result<String, super::vars::VarError> {
        match self {
            Selector::Expr(t) => vars.expand(t),
            Selector::Labels(m) => Ok(m
                .iter()
                .map(|(k, v)| vars.expand(v).map(|v| format!("{}={v}", k.value)))
                .collect::<Result<Vec<_>, _>>()?
                .join(",")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Selector::Expr(t) => t.raw.clone(),
            Selector::Labels(m) => m
                .iter()
                .map(|(k, v)| format!("{}={}", k.value, v.raw))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let node = Spanned::<Node>::deserialize(d)?;
        let loc = node.loc;
        match node.located() {
            Node::Str(t) => Ok(Selector::Expr(t)),
            Node::Map(entries) => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    match v {
                        Node::Str(t) => out.push((k, t)),
                        Node::Int(_) | Node::Bool(_) | Node::Float(_) => {
                            let raw = v.to_json().to_string();
                            out.push((k, Template { raw, loc }))
                        }
                        _ => {
                            return Err(located(
                                k.loc,
                                format_args!(
                                    "selector label `{}` must have a string value",
                                    k.value
                                ),
                            ));
                        }
                    }
                }
                Ok(Selector::Labels(SpannedMap(out)))
            }
            _ => Err(de::Error::custom(
                "selector must be a label selector string (app=web) or a map of labels",
            )),
        }
    }
}

impl JsonSchema for Selector {
    fn schema_name() -> Cow<'static, str> {
        "Selector".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string", "description": "Label selector, e.g. app=web,tier in (a,b)" },
                { "type": "object", "additionalProperties": { "type": "string" } }
            ]
        })
    }
}

// ---------------------------------------------------------------------------------------
// assert

/// An assertion on cluster objects, retried until it holds.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AssertSpec {
    /// The object (`name`) or objects (`selector`) to check.
    pub resource: Spanned<ResourceRef>,
    /// With `selector`: how many objects must match (default: at least one).
    pub count: Option<u32>,
    /// Conditions in `status.conditions` (or, for Gateway API routes, in every
    /// `status.parents[].conditions`).
    #[serde(default)]
    pub conditions: Vec<Spanned<ConditionExpect>>,
    /// Subset match against the object (DESIGN §1.3).
    pub fields: Option<Spanned<Node>>,
    /// The object must (eventually) not exist.
    #[serde(default)]
    pub absent: bool,
    /// Variable name -> JSONPath into the matched object.
    #[serde(default)]
    pub capture: SpannedMap<JsonPathExpr>,
    /// Conditions count only when their observedGeneration is the object's generation
    /// (default true).
    #[serde(default = "yes")]
    pub fresh: bool,
    /// Boolean CEL expressions over the object, `self` (Kubernetes CEL libraries); every one
    /// must be true.
    #[serde(default)]
    pub cel: Vec<CelExpr>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionExpect {
    /// The condition's type, e.g. `Accepted`.
    #[serde(rename = "type")]
    pub type_: Template,
    /// `"True"`, `"False"` or `"Unknown"` (quote them: they are strings).
    pub status: Template,
    /// The condition's reason, when it matters.
    pub reason: Option<Template>,
}

// ---------------------------------------------------------------------------------------
// request

/// A curl-style HTTP request, retried until its expectations hold.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestSpec {
    /// The HTTP method (default GET).
    pub method: Option<Template>,
    /// An absolute http:// or https:// URL.
    pub url: Template,
    /// Request headers.
    #[serde(default)]
    pub headers: SpannedMap<Template>,
    /// A string is sent as is; any other YAML value is sent as JSON.
    pub body: Option<Spanned<Node>>,
    /// One attempt: connect + full response.
    pub attempt_timeout: Option<PositiveDur>,
    /// Accept any TLS certificate. Never implied.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM file of CA certificates to trust (relative to this file).
    pub ca: Option<Template>,
    /// Follow 3xx redirects (default: no, the 3xx is the response).
    #[serde(default)]
    pub follow_redirects: bool,
    /// What a good response looks like (default: any status below 400).
    pub expect: Option<HttpExpect>,
    /// Variable name -> JSONPath into the last good response's JSON body.
    #[serde(default)]
    pub capture: SpannedMap<JsonPathExpr>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpExpect {
    /// A code or a list of codes (default: any code below 400).
    pub status: Option<StatusExpect>,
    /// Header names are case-insensitive; a value is exact, or `{matches: REGEX}`.
    #[serde(default)]
    pub headers: SpannedMap<HeaderExpect>,
    /// Headers that must not be in the response.
    #[serde(default)]
    pub absent_headers: Vec<Template>,
    /// The body: `{equals: ...}`, `{contains: ...}` or `{matches: REGEX}`.
    pub body: Option<TextMatch>,
    /// JSONPath -> expected value (subset match for maps and lists).
    #[serde(default)]
    pub json: SpannedMap<Node>,
    /// Boolean CEL expressions over `response` (`status`, `headers`: lower-case name -> list
    /// of values, `body`: text, `json`: the parsed body or null); every one must be true.
    #[serde(default)]
    pub cel: Vec<CelExpr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusExpect(pub Vec<u16>);

impl<'de> Deserialize<'de> for StatusExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let node = Node::deserialize(d)?;
        let describe = |n: &Node| match n {
            Node::Null => "null".to_string(),
            Node::Bool(b) => format!("boolean {b}"),
            Node::Float(f) => format!("number {f}"),
            Node::Int(i) => format!("number {i}"),
            Node::Str(t) => format!("string {}", crate::util::quoted(&t.raw)),
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a map".into(),
        };
        let code = |n: &Node| match n {
            Node::Int(i) if (100..=599).contains(i) => Ok(*i as u16),
            Node::Int(i) => Err(format!(
                "status {i} is not an HTTP status code: expected 100 to 599"
            )),
            other => Err(format!(
                "wrong type: expected an HTTP status code such as 200 or a list of codes, \
                 found {}",
                describe(other)
            )),
        };
        let codes = match &node {
            Node::Seq(items) if items.is_empty() => {
                return Err(de::Error::custom(
                    "status: the list of codes is empty: give at least one code",
                ));
            }
            Node::Seq(items) => items.iter().map(code).collect::<Result<Vec<_>, _>>(),
            one => code(one).map(|c| vec![c]),
        };
        codes.map(StatusExpect).map_err(de::Error::custom)
    }
}

impl JsonSchema for StatusExpect {
    fn schema_name() -> Cow<'static, str> {
        "StatusExpect".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 },
                  "minItems": 1 }
            ]
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum HeaderExpect {
    Exact(Template),
    Matches(Pattern),
}

impl<'de> Deserialize<'de> for HeaderExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Default)]
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value or {matches: REGEX}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderExpect, E> {
                Ok(HeaderExpect::Exact(Template::literal(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeaderExpect, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeaderExpect, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<HeaderExpect, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<HeaderExpect, A::Error> {
                let mut out = None;
                while let Some(k) = a.next_key::<Spanned<String>>()? {
                    if k.value != "matches" || out.is_some() {
                        return Err(located(
                            k.loc,
                            format_args!(
                                "unknown key `{}` in a header expectation: expected \
                                 `{{matches: REGEX}}` or a plain value",
                                k.value
                            ),
                        ));
                    }
                    out = Some(HeaderExpect::Matches(a.next_value::<Pattern>()?));
                }
                out.ok_or_else(|| {
                    de::Error::custom(
                        "a header expectation needs `matches: REGEX` (or give a plain value)",
                    )
                })
            }
        }
        located_any::<V, D>(d)
    }
}

impl BareString for HeaderExpect {
    fn bare_string(&mut self) -> Option<&mut Template> {
        match self {
            HeaderExpect::Exact(t) => Some(t),
            HeaderExpect::Matches(_) => None,
        }
    }
}

impl JsonSchema for HeaderExpect {
    fn schema_name() -> Cow<'static, str> {
        "HeaderExpect".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                { "type": "object",
                  "properties": { "matches": {
                      "type": "string",
                      "format": "regex",
                      "description": "A regular expression the header's value matches."
                  } },
                  "required": ["matches"], "additionalProperties": false }
            ]
        })
    }
}

/// Exactly one of `equals`, `contains`, `matches`.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_text_transform)]
pub struct TextMatch {
    /// The whole text, exactly.
    pub equals: Option<Template>,
    /// A substring.
    pub contains: Option<Template>,
    /// A regular expression (Rust `regex` syntax) found anywhere in the text.
    pub matches: Option<Pattern>,
}

impl<'de> Deserialize<'de> for TextMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TextMatchKeys {
            equals: Option<Template>,
            contains: Option<Template>,
            matches: Option<Pattern>,
        }
        let k = TextMatchKeys::deserialize(d)?;
        let m = TextMatch {
            equals: k.equals,
            contains: k.contains,
            matches: k.matches,
        };
        let set = m.keys();
        super::de::exactly_one(
            m,
            &set,
            "give one of `equals`, `contains` or `matches`",
            |found| format!("give exactly one of `equals`, `contains` or `matches`, found {found}"),
        )
    }
}

fn one_text_transform(schema: &mut Schema) {
    require_one_of(schema, &["equals", "contains", "matches"]);
}

impl TextMatch {
    pub fn keys(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        if self.equals.is_some() {
            k.push("equals");
        }
        if self.contains.is_some() {
            k.push("contains");
        }
        if self.matches.is_some() {
            k.push("matches");
        }
        k
    }
}

// ---------------------------------------------------------------------------------------
// spans

/// Checks on the spans the system under test emitted.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SpansSpec {
    /// Which spans: `last-request` (default: the trace of the previous request step's last
    /// attempt) or `any` (every span received during this test).
    #[serde(default)]
    pub trace: TraceSelector,
    /// The resource attribute `service.name`.
    pub service: Option<Template>,
    /// Spans that must be there.
    #[serde(default)]
    pub expect: Vec<Spanned<SpanExpect>>,
    /// Span names that must not appear.
    #[serde(default)]
    pub absent: Vec<Template>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TraceSelector {
    /// The trace of the last attempt of the previous request step.
    #[default]
    LastRequest,
    /// Every span received during this test.
    Any,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(transform = one_name_transform)]
pub struct SpanExpect {
    /// The span's name, exactly (or give `name-matches`).
    pub name: Option<Template>,
    /// A regular expression the span's name matches (or give `name`).
    pub name_matches: Option<Pattern>,
    /// The span kind: server, client, internal, producer or consumer.
    pub kind: Option<SpanKind>,
    /// Typed: a number matches an int or double attribute, a string a string one.
    #[serde(default)]
    pub attributes: SpannedMap<Node>,
    /// Exactly this many (default: at least one).
    pub count: Option<u32>,
    /// The name of its parent span.
    pub parent: Option<Template>,
    /// Boolean CEL expressions over `span` (`name`, `kind`, `attributes`, `status`, `parent`);
    /// a span matches when every one is true.
    #[serde(default)]
    pub cel: Vec<CelExpr>,
}

fn one_name_transform(schema: &mut Schema) {
    require_one_of(schema, &["name", "name-matches"]);
}

impl SpanExpect {
    pub fn describe(&self) -> String {
        match (&self.name, &self.name_matches) {
            (Some(n), _) => crate::util::quoted(&n.raw),
            (None, Some(p)) => format!("matching /{}/", p.template.raw),
            _ => "span".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

// ---------------------------------------------------------------------------------------
// patch, delete

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PatchSpec {
    /// The object to patch (by `name`).
    pub resource: Spanned<ResourceRef>,
    /// A JSON merge patch (RFC 7386).
    pub merge: Spanned<Node>,
    /// `status` to patch the status subresource.
    pub subresource: Option<Subresource>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Subresource {
    Status,
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeleteSpec {
    /// The object (`name`) or objects (`selector`) to delete; the step waits until they
    /// are gone.
    pub resource: Spanned<ResourceRef>,
}

// ---------------------------------------------------------------------------------------
// exec

/// Runs a program (argv, never a shell). With `expect` it is an assertion and is retried.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecSpec {
    /// The program and its arguments, as a list (argv): never run through a shell.
    #[serde(deserialize_with = "argv")]
    pub command: Spanned<Vec<Template>>,
    /// Environment variables added to gwtest's own.
    #[serde(default)]
    pub env: SpannedMap<Template>,
    /// With `expect`, the step is an assertion and is retried until it holds.
    pub expect: Option<ExecExpect>,
}

fn argv<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<Vec<Template>>, D::Error> {
    // Items are read as text templates, so `[echo, on]` passes "on", not YAML 1.1's `true`.
    #[derive(Default)]
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Template>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings (argv)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(de::Error::custom(format!(
                "exec.command must be a list (argv), e.g. [{}]; gwtest never runs a shell",
                v.split_whitespace().collect::<Vec<_>>().join(", ")
            )))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(t) = a.next_element::<Template>()? {
                out.push(t);
            }
            if out.is_empty() {
                return Err(de::Error::custom("exec.command is empty"));
            }
            Ok(out)
        }
    }
    spanned_any::<V, D>(d)
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecExpect {
    /// Expected exit code (default 0).
    pub exit: Option<i32>,
    /// Standard output: `{equals|contains|matches: ...}`.
    pub stdout: Option<TextMatch>,
    /// Standard error: `{equals|contains|matches: ...}`.
    pub stderr: Option<TextMatch>,
}

// ---------------------------------------------------------------------------------------
// diagnostics

/// One evidence collector of a suite's `diagnostics:`: exactly one of `logs`, `events`,
/// `get`, `exec`, plus `timeout`.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(transform = one_collector_transform)]
pub struct Collector {
    /// Pod logs (`kubectl logs`), of the pods a selector picks.
    pub logs: Option<LogsCollector>,
    /// A namespace's events (`kubectl get events`), oldest first.
    pub events: Option<EventsCollector>,
    /// Objects of a kind (`kubectl get -o yaml`).
    pub get: Option<ResourceRef>,
    /// A program's exit status and output (argv, never a shell).
    pub exec: Option<ExecCollector>,
    /// How long the collector may take (default 10s, scaled by --timeout-scale); past it,
    /// it is noted as timed out and the run goes on.
    pub timeout: Option<PositiveDur>,
}

pub const COLLECTOR_KEYS: [&str; 4] = ["logs", "events", "get", "exec"];

impl<'de> Deserialize<'de> for Collector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct Keys {
            logs: Option<LogsCollector>,
            events: Option<EventsCollector>,
            get: Option<ResourceRef>,
            exec: Option<ExecCollector>,
            timeout: Option<PositiveDur>,
        }
        let k = Keys::deserialize(d)?;
        let c = Collector {
            logs: k.logs,
            events: k.events,
            get: k.get,
            exec: k.exec,
            timeout: k.timeout,
        };
        let set = c.kinds();
        super::de::exactly_one(
            c,
            &set,
            "a diagnostics collector needs one of `logs`, `events`, `get` or `exec`",
            |found| {
                format!(
                    "give exactly one of `logs`, `events`, `get` or `exec` per collector, found {found}"
                )
            },
        )
    }
}

fn one_collector_transform(schema: &mut Schema) {
    require_one_of(schema, &COLLECTOR_KEYS);
}

impl Collector {
    /// The collector keys present (validation wants exactly one).
    pub fn kinds(&self) -> Vec<&'static str> {
        let present = [
            self.logs.is_some(),
            self.events.is_some(),
            self.get.is_some(),
            self.exec.is_some(),
        ];
        COLLECTOR_KEYS
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .map(|(k, _)| *k)
            .collect()
    }

    /// `logs`, `events`, `get` or `exec`: also the name of its output file.
    pub fn kind(&self) -> &'static str {
        self.kinds().first().copied().unwrap_or("collector")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogsCollector {
    /// Default: the test's namespace.
    pub namespace: Option<Template>,
    /// The pods: `app=web` (label-selector syntax) or a map of labels (default: every pod
    /// of the namespace).
    pub selector: Option<Selector>,
    /// The container (default: every container of each pod).
    pub container: Option<Template>,
    /// From when: `test` (default: since the failed try started), `all`, or a duration
    /// (`5m`: the last five minutes).
    #[serde(default)]
    pub since: Since,
    /// At most this many lines per container (the last ones).
    pub tail: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Since {
    #[default]
    Test,
    All,
    Last(Dur),
}

impl<'de> Deserialize<'de> for Since {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "test" => Ok(Since::Test),
            "all" => Ok(Since::All),
            other => Dur::parse(other).map(Since::Last).map_err(|e| {
                de::Error::custom(format!(
                    "since: expected `test`, `all` or a duration such as 5m ({e})"
                ))
            }),
        }
    }
}

impl JsonSchema for Since {
    fn schema_name() -> Cow<'static, str> {
        "Since".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "enum": ["test", "all"] },
                { "type": "string", "pattern": super::spanned::DURATION_PATTERN,
                  "description": "The last so long, e.g. 5m." }
            ]
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventsCollector {
    /// Default: the test's namespace.
    pub namespace: Option<Template>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecCollector {
    /// The program and its arguments, as a list (argv): never run through a shell.
    #[serde(deserialize_with = "argv")]
    pub command: Spanned<Vec<Template>>,
    /// Environment variables added to gwtest's own.
    #[serde(default)]
    pub env: SpannedMap<Template>,
}

// ---------------------------------------------------------------------------------------
// schema helpers

fn api_version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": API_VERSION })
}

fn suite_kind_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": "Suite" })
}

fn test_kind_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": "Test" })
}

fn namespace_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "enum": ["per-test", "per-suite"] },
            { "type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
              "description": "An existing namespace (a DNS-1123 label)." }
        ]
    })
}
