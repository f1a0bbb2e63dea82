//! The `exec` step: run a program (argv, never a shell) in the test file's directory. With
//! `expect` it is an assertion retried by the engine; without, it must exit 0 once. A running
//! program is killed (its whole process group) at the deadline.

use super::{StepCtx, StepResult, failure_from};
use crate::engine::retry::{self, Class, Miss, Missed, Policy, Section, SectionKind};
use crate::matching::Text;
use crate::process::Output;
use crate::suite::model::{ExecSpec, TextMatch};
use crate::suite::vars::Vars;
use crate::util::{shell_quote, truncate};

struct Expect {
    exit: i32,
    stdout: Option<Text>,
    stderr: Option<Text>,
}

fn text(t: &Option<TextMatch>, vars: &Vars) -> Result<Option<Text>, StepResult> {
    t.as_ref().map(|t| super::text_match(t, vars)).transpose()
}

pub async fn run(spec: &ExecSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let argv = match spec
        .command
        .value
        .iter()
        .map(|t| ctx.vars.expand(t))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(a) => a,
        Err(e) => return e.into(),
    };
    let env = match spec
        .env
        .iter()
        .map(|(k, v)| ctx.vars.expand(v).map(|v| (k.value.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(e) => e,
        Err(e) => return e.into(),
    };
    let expect = match &spec.expect {
        Some(e) => Expect {
            exit: e.exit.unwrap_or(0),
            stdout: match text(&e.stdout, ctx.vars) {
                Ok(t) => t,
                Err(r) => return r,
            },
            stderr: match text(&e.stderr, ctx.vars) {
                Ok(t) => t,
                Err(r) => return r,
            },
        },
        None => Expect {
            exit: 0,
            stdout: None,
            stderr: None,
        },
    };
    // Without `expect` the program runs once (an action), bounded by the step timeout: a
    // failed run is final, never retried.
    let action = spec.expect.is_none();
    let policy = if action {
        Policy::once(ctx.policy.timeout)
    } else {
        ctx.policy
    };
    let dir = ctx.base_dir().to_path_buf();
    let reproduce = reproduce_line(&argv, &env);
    let pending = format!("{} (still running)", truncate(&reproduce, 200));
    let mut observer = ctx.observer();
    let result = retry::eventually(&policy, &ctx.limits, &pending, &mut observer, |_| {
        let (argv, env, dir, expect) = (&argv, &env, &dir, &expect);
        async move {
            let out = crate::process::run(argv, env, dir)
                .await
                .map_err(|e| Miss::fatal(Class::Error, e))?;
            match check(expect, &out) {
                Ok(()) => Ok(out),
                Err(m) => Err(Missed::seen(Miss { fatal: action, ..m }, out)),
            }
        }
    })
    .await;
    match result {
        Ok((_, h)) => StepResult::passed(h.attempts),
        Err(g) => {
            let mut f = failure_from(&g, &ctx.limits);
            if let Some(o) = &g.produced {
                f.sections.push(Section::of(
                    SectionKind::LastRun,
                    "last run",
                    o.value.dump(),
                ));
            }
            f.expected = Some(describe(&expect));
            f.reproduce.push(format!(
                "(cd {} && {reproduce})",
                shell_quote(&dir.display().to_string())
            ));
            StepResult::failed(g.history.attempts, f)
        }
    }
}

fn check(e: &Expect, o: &Output) -> Result<(), Miss> {
    if o.code != Some(e.exit) {
        let last_err = stderr_gist(&o.stderr);
        let detail = if last_err.is_empty() {
            format!("{} (expected exit {})", o.exit_text(), e.exit)
        } else {
            format!(
                "{} (expected exit {}), stderr: {:?}",
                o.exit_text(),
                e.exit,
                truncate(last_err, 160)
            )
        };
        return Err(Miss::new(
            Class::Exit,
            format!("exited with {}", o.exit_text()),
            detail,
        ));
    }
    for (name, want, got) in [
        ("stdout", &e.stdout, &o.stdout),
        ("stderr", &e.stderr, &o.stderr),
    ] {
        if let Some(t) = want
            && let Err(w) = t.check(got)
        {
            return Err(Miss::new(
                Class::Output,
                format!("{name} did not match ({w})"),
                format!("{name} {:?}; expected {w}", truncate(got.trim(), 160)),
            ));
        }
    }
    Ok(())
}

/// The line of stderr that says what went wrong: the first error line (kubectl and most CLIs
/// end with usage hints such as "See 'kubectl patch --help'"), else the last line.
fn stderr_gist(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            lower.starts_with("error") || lower.starts_with("fatal") || lower.contains("error:")
        })
        .or(lines.last())
        .copied()
        .unwrap_or("")
}

fn describe(e: &Expect) -> String {
    let mut parts = vec![format!("exit {}", e.exit)];
    if let Some(t) = &e.stdout {
        parts.push(format!("stdout {}", t.describe()));
    }
    if let Some(t) = &e.stderr {
        parts.push(format!("stderr {}", t.describe()));
    }
    parts.join(", ")
}

fn reproduce_line(argv: &[String], env: &[(String, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(v)))
        .chain(argv.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::stderr_gist;

    #[test]
    fn the_gist_of_stderr_is_the_error_not_the_usage_hint() {
        let kubectl = "Error: unknown flag: --subresource\nSee 'kubectl patch --help' for usage.\n";
        assert_eq!(stderr_gist(kubectl), "Error: unknown flag: --subresource");
        assert_eq!(stderr_gist("warming up\nno such file\n"), "no such file");
        assert_eq!(stderr_gist(""), "");
    }
}
