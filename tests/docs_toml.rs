//! Every `gwtest.toml` example in docs/ loads: each profile it defines resolves (keys known,
//! inheritance chains complete) with the same code `gwtest run` uses.

mod support;

use std::path::PathBuf;

#[test]
fn every_toml_example_in_the_docs_loads() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    let ws = support::Workspace::new("docs-toml");
    let dir = ws.path();
    let mut checked = 0;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&docs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
    {
        let md = std::fs::read_to_string(page).unwrap();
        for block in md.split("```toml\n").skip(1) {
            let body = block.split("```").next().unwrap();
            let file = dir.join("gwtest.toml");
            std::fs::write(&file, body).unwrap();
            let profiles: Vec<&str> = body
                .lines()
                .filter_map(|l| {
                    l.trim()
                        .strip_prefix("[profile.")
                        .and_then(|r| r.strip_suffix(']'))
                })
                .collect();
            assert!(
                !profiles.is_empty(),
                "{}: a toml example without a profile",
                page.display()
            );
            for name in profiles {
                let r = gwtest::config::load_profile(Some(&file), Some(name), false);
                assert!(
                    r.is_ok(),
                    "{}: profile {name}: {}",
                    page.display(),
                    r.unwrap_err()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "only {checked} profiles found in the docs");
}
