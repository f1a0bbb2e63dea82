//! Profiles (`gwtest.toml`) + environment + flags -> `RunConfig`.
//!
//! Precedence: flag > environment (`GWTEST_*`, read by clap into the same fields) > profile >
//! built-in default. A profile only inherits what it names in `inherits`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{ColorWhen, ConformanceArgs, Keep, RunArgs, SelectArgs};

pub const CONFIG_FILE: &str = "gwtest.toml";

/// A problem with the command line or gwtest.toml (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// One `[profile.NAME]` table. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    pub inherits: Option<String>,
    pub paths: Option<Vec<PathBuf>>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub sandbox: Option<bool>,
    pub demo_gateway: Option<bool>,
    pub parallel: Option<usize>,
    pub fail_fast: Option<bool>,
    pub show_secrets: Option<bool>,
    pub retries: Option<u32>,
    pub timeout_scale: Option<f64>,
    pub pause_on_failure: Option<bool>,
    pub pause: Option<bool>,
    pub keep: Option<Keep>,
    pub filter: Option<Vec<String>>,
    pub label: Option<Vec<String>>,
    pub shard: Option<String>,
    pub repeat: Option<u32>,
    pub vars: Option<BTreeMap<String, String>>,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub artifacts: Option<PathBuf>,
    pub otlp_listen: Option<String>,
    pub otlp_http_listen: Option<String>,
    pub otlp_receiver: Option<bool>,
    pub max_spans: Option<usize>,
    pub otlp_export: Option<String>,
    pub otlp_export_protocol: Option<String>,
    pub color: Option<ColorWhen>,
    pub conformance_report: Option<PathBuf>,
    pub implementation: Option<Implementation>,
    pub gateway_api_version: Option<String>,
    pub gateway_api_channel: Option<String>,
    pub conformance_mode: Option<String>,
}

/// Who a conformance report is for (gateway-api's `Implementation`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Implementation {
    #[serde(default)]
    pub organization: String,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, deserialize_with = "one_or_many")]
    pub contact: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Implementation {
    /// `organization=O,project=P,url=U,version=V,contact=C` (contact may repeat).
    pub fn parse(s: &str) -> Result<Implementation, ConfigError> {
        let mut i = Implementation::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                ConfigError(format!(
                    "invalid --implementation {s:?}: {part:?} is not KEY=VALUE (keys: \
                     organization, project, url, version, contact)"
                ))
            })?;
            let v = v.trim().to_owned();
            match k.trim() {
                "organization" => i.organization = v,
                "project" => i.project = v,
                "url" => i.url = v,
                "version" => i.version = v,
                "contact" => i.contact.push(v),
                other => {
                    return Err(ConfigError(format!(
                        "invalid --implementation {s:?}: unknown key {other:?} (keys: \
                         organization, project, url, version, contact)"
                    )));
                }
            }
        }
        Ok(i)
    }

    /// Every field is required, as gateway-api's `Implementation.Validate` says.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let missing: Vec<&str> = [
            ("organization", self.organization.is_empty()),
            ("project", self.project.is_empty()),
            ("url", self.url.is_empty()),
            ("version", self.version.is_empty()),
            ("contact", self.contact.iter().all(|c| c.trim().is_empty())),
        ]
        .into_iter()
        .filter(|(_, m)| *m)
        .map(|(k, _)| k)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(format!(
                "--conformance-report needs the implementation it is for: --implementation \
                 organization=O,project=P,url=U,version=V,contact=C (or `implementation` in \
                 gwtest.toml); missing: {}",
                missing.join(", ")
            )))
        }
    }
}

/// A conformance report to write, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ConformanceConfig {
    pub path: PathBuf,
    pub implementation: Implementation,
    pub gateway_api_version: String,
    pub gateway_api_channel: String,
    pub mode: String,
}

/// The Gateway API release the shipped conformance-derived suites follow.
pub const GATEWAY_API_VERSION: &str = "v1.6.1";

/// The conformance report settings from flags over a profile (`run` and `merge` agree);
/// `None` when no report is asked for. Paths in the profile are relative to `base`.
pub fn resolve_conformance(
    args: &ConformanceArgs,
    p: &Profile,
    base: &Path,
) -> Result<Option<ConformanceConfig>, ConfigError> {
    let path = match (&args.conformance_report, &p.conformance_report) {
        (Some(a), _) => a.clone(),
        (None, Some(p)) if p.is_absolute() => p.clone(),
        (None, Some(p)) => base.join(p),
        (None, None) => return Ok(None),
    };
    let implementation = match &args.implementation {
        Some(s) => Implementation::parse(s)?,
        None => p.implementation.clone().unwrap_or_default(),
    };
    implementation.validate()?;
    let channel = args
        .gateway_api_channel
        .clone()
        .or(p.gateway_api_channel.clone())
        .unwrap_or_else(|| "standard".into());
    if !matches!(channel.as_str(), "standard" | "experimental") {
        return Err(ConfigError(format!(
            "invalid Gateway API channel {channel:?}: standard or experimental"
        )));
    }
    Ok(Some(ConformanceConfig {
        path,
        implementation,
        gateway_api_version: args
            .gateway_api_version
            .clone()
            .or(p.gateway_api_version.clone())
            .unwrap_or_else(|| GATEWAY_API_VERSION.into()),
        gateway_api_channel: channel,
        mode: args
            .conformance_mode
            .clone()
            .or(p.conformance_mode.clone())
            .unwrap_or_else(|| "default".into()),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profile: BTreeMap<String, Profile>,
}

macro_rules! overlay {
    ($dst:ident, $src:ident, $($f:ident),*) => {
        $( if $dst.$f.is_none() { $dst.$f = $src.$f.clone(); } )*
    };
}

impl Profile {
    /// Fill what `self` leaves unset from `parent`.
    fn inherit(&mut self, parent: &Profile) {
        let s = self;
        overlay!(
            s,
            parent,
            paths,
            kubeconfig,
            context,
            sandbox,
            demo_gateway,
            parallel,
            fail_fast,
            show_secrets,
            retries,
            timeout_scale,
            pause_on_failure,
            pause,
            keep,
            filter,
            label,
            shard,
            repeat,
            junit,
            json,
            artifacts,
            otlp_listen,
            otlp_http_listen,
            otlp_receiver,
            max_spans,
            otlp_export,
            otlp_export_protocol,
            color,
            conformance_report,
            implementation,
            gateway_api_version,
            gateway_api_channel,
            conformance_mode
        );
        // Variables merge key by key; the child's win.
        if let Some(pv) = &parent.vars {
            let mine = s.vars.get_or_insert_with(BTreeMap::new);
            for (k, v) in pv {
                mine.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

/// `gwtest.toml` in `start` or the nearest parent directory.
pub fn find_config_file(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(CONFIG_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    None
}

/// The profile to use: the named one (flag or GWTEST_PROFILE), else `ci` when $CI is set and
/// it exists, else `default` if it exists. Resolves `inherits` chains.
pub fn load_profile(
    file: Option<&Path>,
    name: Option<&str>,
    ci: bool,
) -> Result<(Option<String>, Profile), ConfigError> {
    let cfg = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", f.display())))?;
            toml::from_str::<ConfigFile>(&text).map_err(|e| {
                let loc = e
                    .span()
                    .map(|s| {
                        let before = &text[..s.start.min(text.len())];
                        let line = before.matches('\n').count() + 1;
                        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                        format!(":{line}:{col}")
                    })
                    .unwrap_or_default();
                ConfigError(format!("{}{loc}: {}", f.display(), e.message()))
            })?
        }
        None => ConfigFile::default(),
    };
    let chosen = match name {
        Some(n) => {
            if !cfg.profile.contains_key(n) {
                let known: Vec<&str> = cfg.profile.keys().map(String::as_str).collect();
                return Err(ConfigError(match file {
                    Some(f) => format!(
                        "profile `{n}` is not defined in {} (defined: {})",
                        f.display(),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                    None => format!("profile `{n}` requested but no {CONFIG_FILE} was found"),
                }));
            }
            Some(n.to_owned())
        }
        None if ci && cfg.profile.contains_key("ci") => Some("ci".into()),
        None if cfg.profile.contains_key("default") => Some("default".into()),
        None => None,
    };
    let Some(chosen) = chosen else {
        return Ok((None, Profile::default()));
    };
    let mut resolved = cfg.profile[&chosen].clone();
    let mut seen = vec![chosen.clone()];
    let mut next = resolved.inherits.clone();
    while let Some(parent) = next {
        if seen.contains(&parent) {
            seen.push(parent);
            return Err(ConfigError(format!(
                "profile inheritance cycle: {}",
                seen.join(" -> ")
            )));
        }
        let p = cfg.profile.get(&parent).ok_or_else(|| {
            ConfigError(format!(
                "profile `{}` inherits `{parent}`, which is not defined",
                seen.last().expect("non-empty")
            ))
        })?;
        resolved.inherit(p);
        next = p.inherits.clone();
        seen.push(parent);
    }
    Ok((Some(chosen), resolved))
}

/// Everything a run needs to know, resolved.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub paths: Vec<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub sandbox: bool,
    pub demo_gateway: bool,
    pub parallel: usize,
    pub fail_fast: bool,
    /// Print Secret values and credential headers (`--show-secrets`); redacted otherwise.
    pub show_secrets: bool,
    pub retries: Option<u32>,
    pub timeout_scale: f64,
    pub pause_on_failure: bool,
    pub pause: bool,
    pub keep: Keep,
    pub select: Selection,
    pub vars: Vec<(String, String)>,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub artifacts: Option<PathBuf>,
    pub otlp_listen: String,
    pub otlp_http_listen: String,
    pub otlp_receiver: bool,
    pub max_spans: usize,
    pub otlp_export: Option<String>,
    pub otlp_export_protocol: ExportProtocol,
    pub profile: Option<String>,
    /// `--color`: auto, always, never (see [`use_color`]).
    pub color: ColorWhen,
    pub conformance: Option<ConformanceConfig>,
}

impl RunConfig {
    /// Where the suites are, their variables and the selection, as loading takes them.
    pub fn suite_inputs(&self) -> SuiteInputs {
        SuiteInputs {
            paths: self.paths.clone(),
            vars: self.vars.clone(),
            select: self.select.clone(),
        }
    }
}

/// Whether an environment variable is set to something that means "yes" (not empty, not
/// `0`, not `false`).
fn env_yes(k: &str) -> bool {
    std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Whether output gets colour. `always`/`never` decide; `auto` follows the conventions:
/// `NO_COLOR` (set, not empty) turns it off, `CLICOLOR_FORCE` or `FORCE_COLOR` (not `0`)
/// turn it on, otherwise a terminal (not `TERM=dumb`) gets colour. NO_COLOR wins over the
/// forcing variables: it is the user's own "no".
pub fn use_color(when: ColorWhen, terminal: bool) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
                false
            } else if env_yes("CLICOLOR_FORCE") || env_yes("FORCE_COLOR") {
                true
            } else {
                terminal && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportProtocol {
    Grpc,
    HttpProtobuf,
}

impl ExportProtocol {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "grpc" => Ok(ExportProtocol::Grpc),
            "http/protobuf" | "http" => Ok(ExportProtocol::HttpProtobuf),
            other => Err(ConfigError(format!(
                "unknown OTLP export protocol `{other}` (use grpc or http/protobuf)"
            ))),
        }
    }
}

/// Where the run's own spans go (`--otlp-export`), following the OpenTelemetry exporter
/// conventions: the flag (or profile) first; otherwise `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL: `/v1/traces` is appended for
/// OTLP/HTTP), unless `OTEL_SDK_DISABLED=true`. The protocol: the flag, else
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
/// `http/protobuf` (the specification's default). Returns the URL spans are sent to.
pub fn resolve_export(
    flag: Option<String>,
    flag_protocol: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<String>, ExportProtocol), ConfigError> {
    let protocol = flag_protocol
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
        .map(ExportProtocol::parse)
        .transpose()?
        .unwrap_or(ExportProtocol::HttpProtobuf);
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let (endpoint, kind) = match flag {
        Some(f) => (f, EndpointKind::Given),
        None if disabled => return Ok((None, protocol)),
        None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(e) => (e, EndpointKind::Signal),
            None => match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(e) => (e, EndpointKind::Base),
                None => return Ok((None, protocol)),
            },
        },
    };
    let url = export_url(endpoint.trim(), protocol, kind).map_err(ConfigError)?;
    Ok((Some(url), protocol))
}

/// How an export endpoint was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// `--otlp-export` (or the profile): a URL with a path is used as it is; a bare one gets
    /// `/v1/traces` for OTLP/HTTP.
    Given,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used as it is.
    Signal,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL, `v1/traces` appended to its path for OTLP/HTTP.
    Base,
}

/// The URL spans are sent to: a scheme is added when missing, and for OTLP/HTTP the traces
/// path as `kind` says.
pub fn export_url(
    endpoint: &str,
    protocol: ExportProtocol,
    kind: EndpointKind,
) -> Result<String, String> {
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| format!("invalid OTLP export endpoint {endpoint:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid OTLP export endpoint {endpoint:?}: use http:// or https://"
        ));
    }
    if protocol == ExportProtocol::HttpProtobuf {
        let bare = matches!(url.path(), "" | "/");
        match kind {
            EndpointKind::Given if bare => url.set_path("/v1/traces"),
            EndpointKind::Base => {
                let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
                url.set_path(&path);
            }
            _ => {}
        }
    }
    let mut s = url.to_string();
    if protocol == ExportProtocol::Grpc && url.path() == "/" && !with_scheme.ends_with('/') {
        s.pop();
    }
    Ok(s)
}

/// Which tests run: filters, labels, shard, repetitions.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub filters: Vec<regex::Regex>,
    pub labels: Vec<String>,
    pub shard: Option<(u32, u32)>,
    pub repeat: u32,
}

pub const DEFAULT_PARALLEL: usize = 4;
pub const DEFAULT_MAX_SPANS: usize = 1_000_000;
pub const DEFAULT_SUITES_DIR: &str = "suites";

/// `I/N` with 1 <= I <= N.
pub fn parse_shard(s: &str) -> Result<(u32, u32), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "invalid --shard {s:?}: expected I/N with 1 <= I <= N, e.g. 2/4"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// `$GWTEST_VAR`: comma-separated `k=v` pairs (the environment can't repeat a flag; `--var`
/// values, unlike these, may hold commas).
pub fn env_vars() -> Vec<String> {
    std::env::var("GWTEST_VAR")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `k=v` pairs from --var / profile vars.
pub fn parse_vars(raw: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    raw.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("invalid --var {kv:?}: expected NAME=VALUE")))?;
            let k = k.trim();
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return Err(ConfigError(format!(
                    "invalid variable name {k:?} in --var {kv:?}"
                )));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

pub fn build_selection(
    filters: &[String],
    labels: &[String],
    shard: Option<&str>,
    repeat: Option<u32>,
) -> Result<Selection, ConfigError> {
    let filters = filters
        .iter()
        .map(|f| {
            regex::Regex::new(f)
                .map_err(|e| ConfigError(format!("invalid --filter regex {f:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let shard = shard.map(parse_shard).transpose()?;
    let repeat = repeat.unwrap_or(1);
    if repeat == 0 {
        return Err(ConfigError("--repeat must be at least 1".into()));
    }
    Ok(Selection {
        filters,
        labels: labels.to_vec(),
        shard,
        repeat,
    })
}

fn nonempty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v.to_vec()) }
}

/// Whether `$CI` says this is a CI job.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// The selection from flags/environment over a profile (`run` and `list` agree on it).
pub fn resolve_selection(sel: &SelectArgs, p: &Profile) -> Result<Selection, ConfigError> {
    let filters = nonempty(&sel.filter)
        .or(p.filter.clone())
        .unwrap_or_default();
    let labels = nonempty(&sel.label).or(p.label.clone()).unwrap_or_default();
    let shard = sel.shard.clone().or(p.shard.clone());
    build_selection(&filters, &labels, shard.as_deref(), sel.repeat.or(p.repeat))
}

/// The profile in force for a command run in `cwd` (`--profile`, else `ci` under $CI, else
/// `default`), and the directory its relative paths are relative to (gwtest.toml's).
pub struct ProfileInForce {
    pub name: Option<String>,
    pub profile: Profile,
    pub base: PathBuf,
}

impl ProfileInForce {
    pub fn find(cwd: &Path, name: Option<&str>) -> Result<ProfileInForce, ConfigError> {
        let file = find_config_file(cwd);
        let (name, profile) = load_profile(file.as_deref(), name, in_ci())?;
        let base = file
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(cwd)
            .to_path_buf();
        Ok(ProfileInForce {
            name,
            profile,
            base,
        })
    }

    /// A path from the profile, relative to gwtest.toml's directory.
    fn rel(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// Where the suites are, the variables they may use and the selection: flags and
    /// environment over this profile. `run`, `validate` and `list` resolve them here alike.
    pub fn suite_inputs(
        &self,
        paths: &[PathBuf],
        var_flags: &[String],
        select: &SelectArgs,
    ) -> Result<SuiteInputs, ConfigError> {
        let p = &self.profile;
        let mut vars: Vec<(String, String)> = Vec::new();
        if let Some(pv) = &p.vars {
            vars.extend(pv.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for (k, v) in parse_vars(&env_vars())?
            .into_iter()
            .chain(parse_vars(var_flags)?)
        {
            vars.retain(|(e, _)| *e != k);
            vars.push((k, v));
        }
        let paths = if !paths.is_empty() {
            paths.to_vec()
        } else if let Some(pp) = &p.paths {
            pp.iter().map(|x| self.rel(x)).collect()
        } else {
            vec![PathBuf::from(DEFAULT_SUITES_DIR)]
        };
        Ok(SuiteInputs {
            paths,
            vars,
            select: resolve_selection(select, p)?,
        })
    }
}

/// What loading and picking suites takes (see [`ProfileInForce::suite_inputs`]).
#[derive(Clone, Debug)]
pub struct SuiteInputs {
    pub paths: Vec<PathBuf>,
    /// `--var`, `$GWTEST_VAR` and the profile's `vars`, the later winning.
    pub vars: Vec<(String, String)>,
    pub select: Selection,
}

impl RunConfig {
    /// Resolve flags/environment (already merged by clap) over the profile over defaults.
    pub fn resolve(args: &RunArgs, cwd: &Path) -> Result<RunConfig, ConfigError> {
        let in_force = ProfileInForce::find(cwd, args.profile.as_deref())?;
        let SuiteInputs {
            paths,
            vars,
            select,
        } = in_force.suite_inputs(&args.paths, &args.var, &args.select)?;
        let rel = |p: &PathBuf| in_force.rel(p);
        let (profile_name, p, base) = (&in_force.name, &in_force.profile, &in_force.base);

        let parallel = args.parallel.or(p.parallel).unwrap_or(DEFAULT_PARALLEL);
        if parallel == 0 {
            return Err(ConfigError("--parallel must be at least 1".into()));
        }
        let timeout_scale = args.timeout_scale.or(p.timeout_scale).unwrap_or(1.0);
        if !(timeout_scale.is_finite() && timeout_scale > 0.0) {
            return Err(ConfigError(format!(
                "--timeout-scale must be a positive number, got {timeout_scale}"
            )));
        }
        let max_spans = args.max_spans.or(p.max_spans).unwrap_or(DEFAULT_MAX_SPANS);
        if max_spans == 0 {
            return Err(ConfigError("--max-spans must be at least 1".into()));
        }

        let (otlp_export, otlp_export_protocol) = resolve_export(
            args.otlp_export.clone().or(p.otlp_export.clone()),
            args.otlp_export_protocol
                .clone()
                .or(p.otlp_export_protocol.clone()),
            &|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()),
        )?;

        Ok(RunConfig {
            paths,
            kubeconfig: args
                .cluster
                .kubeconfig
                .clone()
                .or(p.kubeconfig.as_ref().map(rel)),
            context: args.cluster.context.clone().or(p.context.clone()),
            sandbox: args.sandbox.or(p.sandbox).unwrap_or(false),
            demo_gateway: args.demo_gateway.or(p.demo_gateway).unwrap_or(false),
            parallel,
            fail_fast: args.fail_fast.or(p.fail_fast).unwrap_or(false),
            show_secrets: args.show_secrets.or(p.show_secrets).unwrap_or(false),
            retries: args.retries.or(p.retries),
            timeout_scale,
            pause_on_failure: args
                .pause_on_failure
                .or(p.pause_on_failure)
                .unwrap_or(false),
            pause: args.pause.or(p.pause).unwrap_or(false),
            keep: args.keep.or(p.keep).unwrap_or(Keep::Never),
            select,
            vars,
            junit: args.junit.clone().or(p.junit.as_ref().map(rel)),
            json: args.json.clone().or(p.json.as_ref().map(rel)),
            artifacts: args.artifacts.clone().or(p.artifacts.as_ref().map(rel)),
            otlp_listen: args
                .otlp_listen
                .clone()
                .or(p.otlp_listen.clone())
                .unwrap_or_else(|| "127.0.0.1:0".into()),
            otlp_http_listen: args
                .otlp_http_listen
                .clone()
                .or(p.otlp_http_listen.clone())
                .unwrap_or_else(|| "127.0.0.1:0".into()),
            otlp_receiver: args.otlp_receiver.or(p.otlp_receiver).unwrap_or(false),
            max_spans,
            otlp_export,
            otlp_export_protocol,
            profile: profile_name.clone(),
            color: args.color.or(p.color).unwrap_or(ColorWhen::Auto),
            conformance: resolve_conformance(&args.conformance, p, base)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let f = dir.join(CONFIG_FILE);
        std::fs::write(&f, text).unwrap();
        f
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "gwtest-config-{name}-{}",
            crate::util::random_suffix(6)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn inherits_chain_and_child_wins() {
        let d = tmpdir("inherit");
        let f = write(
            &d,
            "[profile.default]\nparallel = 2\nretries = 1\nvars = {a = \"1\", b = \"2\"}\n\
             [profile.ci]\ninherits = \"default\"\nretries = 3\nvars = {b = \"x\"}\n",
        );
        let (name, p) = load_profile(Some(&f), Some("ci"), false).unwrap();
        assert_eq!(name.as_deref(), Some("ci"));
        assert_eq!(p.parallel, Some(2));
        assert_eq!(p.retries, Some(3));
        let vars = p.vars.unwrap();
        assert_eq!(vars["a"], "1");
        assert_eq!(vars["b"], "x");
        // With CI set and no name, `ci` is chosen; without CI, `default`.
        assert_eq!(
            load_profile(Some(&f), None, true).unwrap().0.as_deref(),
            Some("ci")
        );
        assert_eq!(
            load_profile(Some(&f), None, false).unwrap().0.as_deref(),
            Some("default")
        );
    }

    #[test]
    fn cycles_unknown_profiles_and_bad_keys_are_errors() {
        let d = tmpdir("cycle");
        let f = write(
            &d,
            "[profile.a]\ninherits = \"b\"\n[profile.b]\ninherits = \"a\"\n",
        );
        let e = load_profile(Some(&f), Some("a"), false).unwrap_err();
        assert!(e.0.contains("cycle: a -> b -> a"), "{e}");
        let e = load_profile(Some(&f), Some("nope"), false).unwrap_err();
        assert!(e.0.contains("profile `nope` is not defined"), "{e}");
        let f = write(&d, "[profile.default]\nparalel = 2\n");
        let e = load_profile(Some(&f), None, false).unwrap_err();
        assert!(e.0.contains(":2:1"), "{e}");
        assert!(e.0.contains("unknown field `paralel`"), "{e}");
    }

    #[test]
    fn otlp_export_follows_the_opentelemetry_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let h = ExportProtocol::HttpProtobuf;
        let g = ExportProtocol::Grpc;
        // Nothing set: no export; the default protocol is http/protobuf.
        assert_eq!(resolve_export(None, None, &env(&[])).unwrap(), (None, h));
        // The generic endpoint is a base URL.
        assert_eq!(
            resolve_export(
                None,
                None,
                &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp")])
            )
            .unwrap(),
            (Some("http://c:4318/otlp/v1/traces".into()), h)
        );
        // The traces endpoint wins and is used as it is.
        let both: &'static [(&str, &str)] = &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom"),
        ];
        assert_eq!(
            resolve_export(None, None, &env(both)).unwrap().0.as_deref(),
            Some("http://t:4318/custom")
        );
        // Protocols: traces-specific over generic; gRPC when chosen.
        let grpc: &'static [(&str, &str)] = &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ];
        assert_eq!(
            resolve_export(None, None, &env(grpc)).unwrap(),
            (Some("http://c:4317".into()), g)
        );
        // OTEL_SDK_DISABLED turns the variables off, not an explicit flag.
        let off: &'static [(&str, &str)] = &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ];
        assert_eq!(resolve_export(None, None, &env(off)).unwrap().0, None);
        assert_eq!(
            resolve_export(Some("c:4318".into()), None, &env(off))
                .unwrap()
                .0
                .as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert!(resolve_export(None, Some("carrier-pigeon".into()), &env(&[])).is_err());
    }

    #[test]
    fn export_urls_get_a_scheme_and_the_http_path() {
        use EndpointKind::{Base, Given, Signal};
        use ExportProtocol::{Grpc, HttpProtobuf as Http};
        for (endpoint, protocol, kind, url) in [
            ("localhost:4317", Grpc, Given, "http://localhost:4317"),
            ("http://c:4317", Grpc, Given, "http://c:4317"),
            ("http://c:4318", Http, Given, "http://c:4318/v1/traces"),
            ("http://c:4318/", Http, Given, "http://c:4318/v1/traces"),
            (
                "http://c/otlp/v1/traces",
                Http,
                Given,
                "http://c/otlp/v1/traces",
            ),
            ("http://c:4318/", Http, Base, "http://c:4318/v1/traces"),
            ("http://c:4318/", Http, Signal, "http://c:4318/"),
        ] {
            assert_eq!(
                export_url(endpoint, protocol, kind).unwrap(),
                url,
                "{endpoint}"
            );
        }
        assert!(export_url("ftp://c", Http, Given).is_err());
    }

    #[test]
    fn shards_and_vars_parse_strictly() {
        assert_eq!(parse_shard("2/4").unwrap(), (2, 4));
        for bad in ["0/4", "5/4", "1/0", "x", "1-2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_vars(&["a=b=c".into()]).unwrap(),
            vec![("a".into(), "b=c".into())]
        );
        assert!(parse_vars(&["novalue".into()]).is_err());
    }
}
