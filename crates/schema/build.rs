//! Converts the vendored Gateway API CRDs (YAML, as published) to JSON once at build time:
//! the same documents, parsed by serde-saphyr here instead of at every sandbox start (parsing
//! 1.2 MB of YAML costs ~45 ms in release builds and several times that in debug builds; the
//! JSON parses in ~3 ms).

use std::path::Path;

fn main() {
    let dir = Path::new("crds");
    println!("cargo::rerun-if-changed=crds");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("crds/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).expect("read a CRD file");
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let docs: Vec<serde_json::Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        let json = serde_json::to_string(&docs).expect("json");
        let target = Path::new(&out).join(name.replace(".yaml", ".json"));
        std::fs::write(target, json).expect("write");
    }
}
