//! Manifests to apply: files of one or more YAML documents, or inline maps. `${}` is
//! substituted in string scalars after parsing (so YAML structure can't be broken by a value),
//! and every object keeps the file and line it came from for error messages.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::suite::spanned::{Loc, Node, Spanned};
use crate::suite::vars::Vars;

/// One object to apply and where it was written.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub value: Value,
    pub file: PathBuf,
    pub loc: Loc,
}

impl Manifest {
    /// `file:line` for messages.
    pub fn origin(&self) -> String {
        if self.loc.is_known() {
            format!("{}:{}", self.file.display(), self.loc.line)
        } else {
            self.file.display().to_string()
        }
    }
}

fn at(file: &Path, loc: Loc) -> String {
    if loc.is_known() {
        format!("{}:{}", file.display(), loc)
    } else {
        file.display().to_string()
    }
}

fn expand(node: &Spanned<Node>, file: &Path, vars: &Vars) -> Result<Vec<Manifest>, String> {
    let value = vars.expand_node(&node.value).map_err(|e| {
        format!(
            "{}: {}",
            at(file, if e.loc.is_known() { e.loc } else { node.loc }),
            e.message
        )
    })?;
    if value.is_null() {
        return Ok(Vec::new());
    }
    if !value.is_object() {
        return Err(format!(
            "{}: a manifest must be a map (a Kubernetes object)",
            at(file, node.loc)
        ));
    }
    // `kind: List` holds several objects, as kubectl accepts.
    if value.get("kind").and_then(Value::as_str) == Some("List") {
        let items = value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        return Ok(items
            .into_iter()
            .map(|v| Manifest {
                value: v,
                file: file.to_path_buf(),
                loc: node.loc,
            })
            .collect());
    }
    Ok(vec![Manifest {
        value,
        file: file.to_path_buf(),
        loc: node.loc,
    }])
}

/// Every object in a manifest file, with variables substituted (read off the async threads:
/// steps and fixtures call it).
pub async fn read_file(path: &Path, vars: &Vars) -> Result<Vec<Manifest>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", crate::util::shown_path(path)))?;
    let docs: Vec<Spanned<Node>> = serde_saphyr::from_str_multiple::<Spanned<Node>, Vec<_>>(&text)
        .map_err(|e| {
            let loc = e.location().map(Loc::from).unwrap_or(Loc::UNKNOWN);
            format!(
                "{}: {}",
                at(path, loc),
                crate::suite::yaml::yaml_message(&e)
            )
        })?;
    let mut out = Vec::new();
    for d in &docs {
        out.extend(expand(d, path, vars)?);
    }
    Ok(out)
}

/// An inline `{manifest: ...}`.
pub fn from_node(node: &Spanned<Node>, file: &Path, vars: &Vars) -> Result<Vec<Manifest>, String> {
    expand(node, file, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_expand_variables_keep_lines_and_split_lists() {
        let dir = crate::util::test_dir("manifests");
        let f = dir.join("m.yaml");
        std::fs::write(
            &f,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"${name}\"}\ndata: {port: \"${port}\"}\n---\n\
             ---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n",
        )
        .unwrap();
        let mut vars = Vars::new();
        vars.set("name", "a");
        vars.set("port", 8080);
        let m = read_file(&f, &vars).await.unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value["metadata"]["name"], "a");
        // A whole-string reference keeps the variable's type.
        assert_eq!(m[0].value["data"]["port"], 8080);
        assert_eq!(m[0].loc.line, 1);
        assert_eq!(m[1].value["metadata"]["name"], "b");
        let err = read_file(&f, &Vars::new()).await.unwrap_err();
        assert!(err.contains("m.yaml:3:"), "{err}");
        assert!(err.contains("unknown variable `${name}`"), "{err}");
        // A YAML error names its position once (ours) and the key as written.
        std::fs::write(&f, "kind: ConfigMap\n\"a, set b\": 1\n\"a, set b\": 2\n").unwrap();
        let err = read_file(&f, &Vars::new()).await.unwrap_err();
        assert!(
            err.ends_with(
                "m.yaml:3:1: duplicate key `a, set b`: a key may appear only once in a map"
            ),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
