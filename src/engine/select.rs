//! Which tests run: filters, labels, shards (stable hash: adding a test never moves another),
//! repetitions.

use std::sync::Arc;

use super::events::{TestId, TestKey};
use crate::config::{Selection, SuiteInputs};
use crate::suite::load::{self, LoadError, Suite, Test};

/// Why `run`, `validate` or `list` cannot go on with the suites (exit 2 for each).
#[derive(Debug)]
pub enum Unusable {
    /// The suites have errors (each with file:line:column).
    Invalid(Vec<LoadError>),
    /// A filter or label matches no test.
    NoMatch,
}

/// Load and check the suites as every command does: the variables the command knows
/// (`--var`, `$GWTEST_VAR`, the profile's `vars`) count as defined, every other unknown
/// name is an error.
pub fn load_suites(inputs: &SuiteInputs) -> Result<Vec<Suite>, Unusable> {
    let names: Vec<String> = inputs.vars.iter().map(|(k, _)| k.clone()).collect();
    load::load_checked(&inputs.paths, &names).map_err(Unusable::Invalid)
}

/// The tests the selection picks. A filter or label that matches nothing is a mistake; an
/// empty shard is not (a small run split many ways), so the check ignores sharding.
pub fn pick_checked(suites: &[Suite], sel: &Selection) -> Result<Vec<SuitePick>, Unusable> {
    if !sel.filters.is_empty() || !sel.labels.is_empty() {
        let unsharded = Selection {
            shard: None,
            ..sel.clone()
        };
        if pick(suites, &unsharded).is_empty() {
            return Err(Unusable::NoMatch);
        }
    }
    Ok(pick(suites, sel))
}

/// The tests of one suite that run, in order.
#[derive(Clone, Debug)]
pub struct SuitePick {
    pub suite: usize,
    /// (index of the test in its suite, id of this repetition)
    pub tests: Vec<(usize, TestId)>,
}

/// FNV-1a: stable across versions and platforms, unlike std's hasher.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The shard (1-based) a test belongs to out of `n`.
pub fn shard_of(suite: &str, test: &str, n: u32) -> u32 {
    (stable_hash(&format!("{suite}/{test}")) % u64::from(n)) as u32 + 1
}

fn label_ok(test: &Test, labels: &[String]) -> bool {
    let (excl, incl): (Vec<&String>, Vec<&String>) =
        labels.iter().partition(|l| l.starts_with('!'));
    if excl
        .iter()
        .any(|l| test.labels.iter().any(|t| t == &l[1..]))
    {
        return false;
    }
    incl.is_empty() || incl.iter().any(|l| test.labels.contains(l))
}

/// Apply a selection to loaded suites. Suites with no selected test are left out.
pub fn pick(suites: &[Suite], sel: &Selection) -> Vec<SuitePick> {
    let mut out = Vec::new();
    for (si, suite) in suites.iter().enumerate() {
        let mut tests = Vec::new();
        for (ti, test) in suite.tests.iter().enumerate() {
            let full = format!("{}/{}", suite.name, test.name);
            if !sel.filters.is_empty() && !sel.filters.iter().any(|r| r.is_match(&full)) {
                continue;
            }
            if !label_ok(test, &sel.labels) {
                continue;
            }
            if let Some((i, n)) = sel.shard
                && shard_of(&suite.name, &test.name, n) != i
            {
                continue;
            }
            for repeat in 0..sel.repeat.max(1) {
                let key = TestKey {
                    suite: suite.name.clone(),
                    name: test.name.clone(),
                    file: test.file.clone(),
                    loc: test.loc,
                    repeat,
                };
                tests.push((ti, Arc::new(key)));
            }
        }
        if !tests.is_empty() {
            out.push(SuitePick { suite: si, tests });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        // Pinned: changing the hash would move every test to another shard.
        assert_eq!(stable_hash(""), 0xcbf29ce484222325);
        assert_eq!(stable_hash("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn shards_partition_names() {
        let names: Vec<String> = (0..500).map(|i| format!("t{i}")).collect();
        let mut counts = [0usize; 4];
        for n in &names {
            let s = shard_of("suite", n, 4);
            assert!((1..=4).contains(&s));
            counts[(s - 1) as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 500);
        assert!(counts.iter().all(|&c| c > 80), "{counts:?}");
    }
}
