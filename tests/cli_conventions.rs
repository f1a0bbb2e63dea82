//! The conventions a command-line tool is expected to follow, through the real binary: shell
//! completions (clap_complete) that a shell can load and that complete, a man page
//! (clap_mangen) that man's formatter renders, and a JSON Schema that ajv compiles in strict
//! mode (the tools come from `ci/install-deps.sh`: node + ajv/ajv-formats in .tools/node; a
//! missing tool fails these tests, it never skips them).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::output::succeeded;
use support::{Workspace, gwtest};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What `bash` completes for the words of a command line (the last one being typed).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _gwtest gwtest '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.join(" "),
        words[cword],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&program)
        .output()
        .expect("run bash");
    succeeded(&out, "bash -c")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn shell_completions_load_and_complete_commands_flags_and_values() {
    let ws = Workspace::new("completions");
    let out = gwtest(&["completions", "bash"]).run();
    out.assert_exit(0);
    let script = ws.write("gwtest.bash", &out.stdout);
    // bash parses it...
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    succeeded(&syntax, "bash -n");
    // ...and completes with it.
    assert_eq!(bash_complete(&script, &["gwtest", "me"]), ["merge"]);
    assert_eq!(
        bash_complete(&script, &["gwtest", "run", "--conformance-r"]),
        ["--conformance-report"]
    );
    let colors = bash_complete(&script, &["gwtest", "run", "--color", ""]);
    assert_eq!(colors, ["auto", "always", "never"]);
    let shells = bash_complete(&script, &["gwtest", "completions", ""]);
    for s in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.iter().any(|x| x == s), "{shells:?}");
    }
    // The other shells get scripts in their own language, knowing the same commands.
    for (shell, marker) in [
        ("zsh", "#compdef gwtest"),
        ("fish", "complete -c gwtest"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = gwtest(&["completions", shell]).run();
        out.assert_exit(0);
        assert!(out.stdout.contains(marker), "{shell}:\n{}", out.stdout);
        for cmd in ["run", "merge", "validate", "completions", "man"] {
            assert!(out.stdout.contains(cmd), "{shell} lacks {cmd}");
        }
    }
    gwtest(&["completions", "tcsh"]).run().assert_exit(2);
}

#[test]
fn the_man_page_renders_with_every_command_and_flag() {
    let out = gwtest(&["man"]).run();
    out.assert_exit(0);
    assert!(out.stdout.starts_with(".ie"), "{}", out.stdout);
    let ws = Workspace::new("man");
    let page = ws.write("gwtest.1", &out.stdout);
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8", "-P", "-cbu"])
        .arg(&page)
        .stderr(Stdio::piped())
        .output()
        .expect("groff (Debian: groff-base) renders man pages");
    assert!(rendered.status.success());
    assert!(
        rendered.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    for want in [
        "NAME",
        "SYNOPSIS",
        "SUBCOMMANDS",
        "gwtest-merge(1)",
        "--color",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // One page per command, with its own flags.
    let dir = ws.path().join("man1");
    gwtest(&["man", "--dir", dir.to_str().unwrap()])
        .run()
        .assert_exit(0);
    let run = std::fs::read_to_string(dir.join("gwtest-run.1")).unwrap();
    for flag in ["shard", "repeat", "conformance\\-report", "otlp\\-export"] {
        assert!(run.contains(flag), "gwtest-run.1 lacks {flag}");
    }
    assert!(dir.join("gwtest-merge.1").is_file());
}

/// node, with ajv and ajv-formats from .tools/node (ci/install-deps.sh).
fn ajv_tools() -> PathBuf {
    let tools = repo().join(".tools/node");
    assert!(
        tools.join("node_modules/ajv/package.json").is_file()
            && tools
                .join("node_modules/ajv-formats/package.json")
                .is_file(),
        "ajv is not installed in {}: run `bash ci/install-deps.sh`",
        tools.display()
    );
    tools
}

const CHECK_JS: &str = r#"
// argv: tools dir, schema file, then JSON documents; prints one verdict per document.
const [tools, schemaFile, ...docs] = process.argv.slice(2);
const fs = require("fs");
const schema = JSON.parse(fs.readFileSync(schemaFile, "utf8"));
const Ajv = schema["$schema"].includes("2020-12")
  ? require(tools + "/node_modules/ajv/dist/2020").default
  : require(tools + "/node_modules/ajv").default;
const addFormats = require(tools + "/node_modules/ajv-formats").default;
const warnings = [];
const logger = { log: console.log, warn: (...a) => warnings.push(a.join(" ")), error: console.error };
for (const [mode, opts] of [["default", {}], ["strict", { strict: true }]]) {
  const ajv = new Ajv({ ...opts, logger, allErrors: true });
  addFormats(ajv);
  const validate = ajv.compile(schema);
  if (warnings.length) { console.log(`WARN ${mode}: ${warnings.join("; ")}`); process.exit(1); }
  for (const d of docs) {
    const ok = validate(JSON.parse(fs.readFileSync(d, "utf8")));
    console.log(`${mode} ${ok ? "valid" : "invalid"} ${d}${ok ? "" : " " + ajv.errorsText(validate.errors)}`);
  }
}
"#;

fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(text).expect("YAML")
}

#[test]
fn the_json_schema_compiles_in_ajv_strict_mode_and_accepts_the_shipped_suites() {
    let tools = ajv_tools();
    let ws = Workspace::new("ajv");
    let check = ws.write("check.js", CHECK_JS);
    // Documents: every shipped test and suite file, and one broken test.
    let mut tests = Vec::new();
    let mut suites = Vec::new();
    let mut stack = vec![repo().join("suites")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".test.yaml") {
                tests.extend(yaml_docs(&std::fs::read_to_string(&p).unwrap()));
            } else if name == "suite.yaml" {
                suites.extend(yaml_docs(&std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    assert!(tests.len() >= 25, "{}", tests.len());
    let write_docs = |tag: &str, docs: &[serde_json::Value]| -> Vec<String> {
        docs.iter()
            .enumerate()
            .map(|(i, d)| {
                ws.write(&format!("{tag}-{i}.json"), &d.to_string())
                    .display()
                    .to_string()
            })
            .collect()
    };
    let mut test_files = write_docs("test", &tests);
    let broken = ws.write(
        "broken.json",
        r#"{"apiVersion": "gwtest/v1alpha1", "kind": "Test", "name": "x", "steps": [{"sleep": "1s", "pause": "two actions"}], "retries": -1}"#,
    );
    test_files.push(broken.display().to_string());
    let suite_files = write_docs("suite", &suites);
    for draft in [&[][..], &["--draft07"][..]] {
        for (kind, files) in [("test", &test_files), ("suite", &suite_files)] {
            let mut args = vec!["schema"];
            if kind == "suite" {
                args.push("--suite");
            }
            args.extend_from_slice(draft);
            let out = gwtest(&args).run();
            out.assert_exit(0);
            let schema = ws.write(&format!("{kind}{}.schema.json", draft.len()), &out.stdout);
            let run = Command::new("node")
                .arg(&check)
                .arg(&tools)
                .arg(&schema)
                .args(files.iter())
                .output()
                .expect("node is installed (ci/install-deps.sh)");
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(
                run.status.success(),
                "{kind} {draft:?}: {stdout}\n{}",
                String::from_utf8_lossy(&run.stderr)
            );
            for line in stdout.lines() {
                let broken_doc = line.ends_with("broken.json") || line.contains("broken.json ");
                if broken_doc {
                    assert!(line.contains(" invalid "), "{line}");
                } else {
                    assert!(line.contains(" valid "), "{kind} {draft:?}: {line}");
                }
            }
            assert_eq!(stdout.lines().count(), 2 * files.len(), "{stdout}");
        }
    }
}
