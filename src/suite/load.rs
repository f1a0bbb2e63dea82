//! Files -> suites, keeping locations for every error.
//! (Interface fixed here; the implementation is in progress.)

use std::fmt;
use std::path::PathBuf;

use super::model::{SuiteDoc, TestDoc};
use super::spanned::Loc;

/// A loaded suite: its `suite.yaml` and the tests of its `*.test.yaml` files.
#[derive(Clone, Debug)]
pub struct Suite {
    pub name: String,
    /// The suite directory.
    pub dir: PathBuf,
    /// Its suite.yaml.
    pub file: PathBuf,
    pub doc: SuiteDoc,
    /// Tests in file-name order, then document order.
    pub tests: Vec<Test>,
}

#[derive(Clone, Debug)]
pub struct Test {
    pub name: String,
    pub file: PathBuf,
    /// Where the test's document starts.
    pub loc: Loc,
    pub doc: TestDoc,
    /// The test's labels followed by its suite's.
    pub labels: Vec<String>,
}

impl Test {
    /// Whether any step talks to a cluster.
    pub fn needs_cluster(&self) -> bool {
        self.doc.steps.iter().any(|s| s.value.needs_cluster())
    }

    /// Whether any step checks spans.
    pub fn needs_spans(&self) -> bool {
        self.doc.steps.iter().any(|s| s.value.spans.is_some())
    }
}

impl Suite {
    /// Whether the suite itself needs a cluster (fixtures, or variables read from it).
    pub fn setup_needs_cluster(&self) -> bool {
        !self.doc.fixtures.is_empty()
            || self
                .doc
                .vars
                .iter()
                .any(|(_, v)| matches!(v, super::model::VarDef::From(_)))
    }
}

/// A problem in a suite file: where, what, and the lines around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub loc: Loc,
    pub message: String,
    /// The source lines around `loc` with a caret, when the file could be read.
    pub snippet: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.is_known() {
            write!(f, "{}:{}: {}", self.file.display(), self.loc, self.message)?;
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

/// Load every suite under `paths` (directories or `*.test.yaml` files).
pub fn load(_paths: &[PathBuf]) -> Result<Vec<Suite>, Vec<LoadError>> {
    todo!("language helper")
}
