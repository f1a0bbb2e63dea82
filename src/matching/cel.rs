//! `cel:` checks: boolean CEL expressions with the Kubernetes CEL libraries (kube-cel, the
//! engine the sandbox evaluates CRD validation rules with) over an object (`self`), a
//! response (`response`) or a span (`span`). A failing expression is explained by the values
//! of its operands (`self.status.addresses.size() == 2` → `self.status.addresses.size() was
//! 1`), so the failure says why without a rerun.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program};

pub use kube_cel::cel::Value;

/// Values longer than this are cut in explanations.
const SHOWN: usize = 120;

/// Compile an expression; the error names where in it the parser stopped.
pub fn compile(source: &str) -> Result<Program, String> {
    Program::compile(source).map_err(|errs| {
        let parts: Vec<String> = errs
            .errors
            .iter()
            .map(|e| {
                if e.pos.1 >= 0 {
                    format!("{} (at character {})", e.msg, e.pos.1 + 1)
                } else {
                    e.msg.clone()
                }
            })
            .collect();
        if parts.is_empty() {
            "syntax error".to_string()
        } else {
            parts.join("; ")
        }
    })
}

/// The variables an expression reads that are not among `allowed` (e.g. `oldSelf` in an
/// assert), sorted. Comprehension variables (`x` in `all(x, …)`) are bound by the expression.
pub fn unknown_variables(program: &Program, allowed: &[&str]) -> Vec<String> {
    let mut bound = Vec::new();
    comprehension_vars(program.expression(), &mut bound);
    let mut out: Vec<String> = program
        .references()
        .variables()
        .into_iter()
        .filter(|v| !allowed.contains(v) && !bound.iter().any(|b| b == v) && !v.starts_with('@'))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn comprehension_vars(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Comprehension(c) => {
            out.push(c.iter_var.clone());
            out.extend(c.iter_var2.clone());
            for sub in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                comprehension_vars(sub, out);
            }
        }
        Expr::Call(c) => {
            c.target.iter().for_each(|t| comprehension_vars(t, out));
            c.args.iter().for_each(|a| comprehension_vars(a, out));
        }
        Expr::Select(s) => comprehension_vars(&s.operand, out),
        Expr::List(l) => l.elements.iter().for_each(|x| comprehension_vars(x, out)),
        Expr::Map(m) => {
            for en in &m.entries {
                if let EntryExpr::MapEntry(me) = &en.expr {
                    comprehension_vars(&me.key, out);
                    comprehension_vars(&me.value, out);
                }
            }
        }
        _ => {}
    }
}

/// JSON as a CEL value: integers are `int` (`uint` beyond i64), as Kubernetes gives
/// `integer` fields, so `self.spec.port == 8080` compares like with like.
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(from_json).collect())),
        serde_json::Value::Object(o) => {
            let map: HashMap<Key, Value> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), from_json(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// A `cel:` expression ready to run: variables substituted, compiled.
#[derive(Clone, Debug)]
pub struct Check {
    pub source: String,
    program: Arc<Program>,
}

impl Check {
    /// From a suite's expression: compiled at load time unless it held `${...}`, then it is
    /// compiled here, after substitution.
    pub fn prepare(
        e: &crate::suite::spanned::CelExpr,
        vars: &crate::suite::vars::Vars,
    ) -> Result<Check, String> {
        if let Some(p) = &e.compiled {
            return Ok(Check {
                source: e.template.raw.clone(),
                program: p.clone(),
            });
        }
        let source = vars.expand(&e.template).map_err(|err| err.to_string())?;
        let program = compile(&source).map_err(|err| {
            format!(
                "invalid CEL expression {} (after substitution): {err}",
                crate::util::quoted(&source)
            )
        })?;
        Ok(Check {
            source,
            program: Arc::new(program),
        })
    }

    /// Run with the one variable `name` bound to `value`.
    pub fn run(&self, name: &str, value: Value) -> Result<(), CelMiss> {
        check(&self.source, &self.program, &[(name, value)])
    }
}

/// Why an expression did not hold, for a failure: a short phrase and the operands' values.
#[derive(Clone, Debug, PartialEq)]
pub struct CelMiss {
    /// `cel `self.x == 2` was false` (attempts are grouped by it).
    pub summary: String,
    /// The summary and the operands: `…: self.x was 1`.
    pub detail: String,
}

/// Evaluate `program` (the text `source`) with `vars` bound; `Ok` when it is `true`.
pub fn check(source: &str, program: &Program, vars: &[(&str, Value)]) -> Result<(), CelMiss> {
    let mut ctx = Context::default().with_all();
    for (name, value) in vars {
        ctx.add_variable_from_value(*name, value.clone());
    }
    let miss = |what: String, why: Vec<String>| {
        let summary = format!("cel `{source}` {what}");
        let detail = if why.is_empty() {
            summary.clone()
        } else {
            format!("{summary}: {}", why.join(", "))
        };
        CelMiss { summary, detail }
    };
    match program.execute(&ctx) {
        Ok(Value::Bool(true)) => Ok(()),
        Ok(Value::Bool(false)) => Err(miss(
            "was false".into(),
            explain(program.expression(), &ctx),
        )),
        Ok(other) => Err(miss(
            format!("returned {}, not a boolean", show(&other)),
            Vec::new(),
        )),
        Err(e) => Err(miss(format!("failed: {e}"), Vec::new())),
    }
}

const COMPARISONS: [&str; 7] = ["_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "@in"];

/// The values that made `e` false: operands of a comparison, the false side of `&&`, both
/// sides of `||`, the operand of `!`; otherwise the expression itself.
fn explain(e: &IdedExpr, ctx: &Context) -> Vec<String> {
    let eval = |x: &IdedExpr| Value::resolve(x, ctx);
    let said = |x: &IdedExpr| match eval(x) {
        Ok(v) => format!("{} was {}", unparse(x), show(&v)),
        Err(err) => format!("{} failed: {err}", unparse(x)),
    };
    if let Expr::Call(c) = &e.expr {
        match c.func_name.as_str() {
            f if COMPARISONS.contains(&f) && c.args.len() == 2 => {
                return c
                    .args
                    .iter()
                    .filter(|a| !matches!(a.expr, Expr::Literal(_)))
                    .map(said)
                    .collect();
            }
            "_&&_" => {
                for a in &c.args {
                    if !matches!(eval(a), Ok(Value::Bool(true))) {
                        return explain(a, ctx);
                    }
                }
            }
            "_||_" => return c.args.iter().flat_map(|a| explain(a, ctx)).collect(),
            "!_" if c.args.len() == 1 => return vec![said(&c.args[0])],
            _ => {}
        }
    }
    match &e.expr {
        Expr::Literal(_) => Vec::new(),
        _ => vec![said(e)],
    }
}

/// A value as CEL would write it, cut to [`SHOWN`] characters.
pub fn show(v: &Value) -> String {
    let s = render(v);
    crate::util::truncate(&s, SHOWN)
}

fn render(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => format!("{u}u"),
        Value::Float(f) => format!("{f:?}"),
        Value::String(s) => format!("{s:?}"),
        Value::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
        Value::List(l) => format!("[{}]", l.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => {
            let mut entries: Vec<(String, String)> = m
                .map
                .iter()
                .map(|(k, v)| (render_key(k), render(v)))
                .collect();
            entries.sort();
            let parts: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Duration(d) => format!("duration({:?})", format!("{}ms", d.num_milliseconds())),
        Value::Timestamp(t) => format!("timestamp({:?})", t.to_rfc3339()),
        Value::Function(name, _) => format!("function {name}"),
        Value::Opaque(_) => "<opaque>".into(),
    }
}

fn render_key(k: &Key) -> String {
    match k {
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => format!("{u}u"),
        Key::Bool(b) => b.to_string(),
        Key::String(s) => format!("{s:?}"),
    }
}

/// An expression written back as CEL (macros in their source form where recognisable).
pub fn unparse(e: &IdedExpr) -> String {
    match &e.expr {
        Expr::Unspecified => "?".into(),
        Expr::Ident(n) => n.clone(),
        Expr::Literal(l) => literal(l),
        Expr::Select(s) if s.test => format!("has({}.{})", unparse(&s.operand), s.field),
        Expr::Select(s) => format!("{}.{}", unparse(&s.operand), s.field),
        Expr::List(l) => format!(
            "[{}]",
            l.elements
                .iter()
                .map(unparse)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expr::Map(m) => {
            let parts: Vec<String> = m
                .entries
                .iter()
                .filter_map(|en| match &en.expr {
                    EntryExpr::MapEntry(me) => {
                        Some(format!("{}: {}", unparse(&me.key), unparse(&me.value)))
                    }
                    EntryExpr::StructField(_) => None,
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Expr::Struct(_) => "{…}".into(),
        Expr::Call(c) => {
            let args: Vec<String> = c.args.iter().map(unparse).collect();
            let bin = |op: &str| format!("{} {op} {}", args[0], args[1]);
            match (c.func_name.as_str(), args.len()) {
                ("_==_", 2) => bin("=="),
                ("_!=_", 2) => bin("!="),
                ("_<_", 2) => bin("<"),
                ("_<=_", 2) => bin("<="),
                ("_>_", 2) => bin(">"),
                ("_>=_", 2) => bin(">="),
                ("_&&_", 2) => bin("&&"),
                ("_||_", 2) => bin("||"),
                ("_+_", 2) => bin("+"),
                ("_-_", 2) => bin("-"),
                ("_*_", 2) => bin("*"),
                ("_/_", 2) => bin("/"),
                ("_%_", 2) => bin("%"),
                ("@in", 2) => bin("in"),
                ("_[_]", 2) => format!("{}[{}]", args[0], args[1]),
                ("!_", 1) => format!("!{}", args[0]),
                ("-_", 1) => format!("-{}", args[0]),
                ("_?_:_", 3) => format!("{} ? {} : {}", args[0], args[1], args[2]),
                (f, _) => match &c.target {
                    Some(t) => format!("{}.{f}({})", unparse(t), args.join(", ")),
                    None => format!("{f}({})", args.join(", ")),
                },
            }
        }
        Expr::Comprehension(c) => {
            let range = unparse(&c.iter_range);
            let v = &c.iter_var;
            // all(): `@result && p`; exists(): `@result || p` (cel's macro expansions).
            match &c.loop_step.expr {
                Expr::Call(step) if step.args.len() == 2 => match step.func_name.as_str() {
                    "_&&_" => format!("{range}.all({v}, {})", unparse(&step.args[1])),
                    "_||_" => format!("{range}.exists({v}, {})", unparse(&step.args[1])),
                    _ => format!("{range}.map({v}, …)"),
                },
                Expr::Call(step) if step.func_name == "_?_:_" && step.args.len() == 3 => {
                    format!("{range}.filter({v}, {})", unparse(&step.args[0]))
                }
                _ => format!("{range}.<macro>({v}, …)"),
            }
        }
    }
}

fn literal(l: &LiteralValue) -> String {
    match l {
        LiteralValue::Boolean(b) => b.inner().to_string(),
        LiteralValue::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b.inner())),
        LiteralValue::Double(d) => format!("{:?}", d.inner()),
        LiteralValue::Int(i) => i.inner().to_string(),
        LiteralValue::Null => "null".into(),
        LiteralValue::String(s) => format!("{:?}", s.inner()),
        LiteralValue::UInt(u) => format!("{}u", u.inner()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(src: &str, obj: serde_json::Value) -> Result<(), CelMiss> {
        let p = compile(src).unwrap();
        check(src, &p, &[("self", from_json(&obj))])
    }

    #[test]
    fn a_false_comparison_shows_its_operands() {
        let obj = json!({"status": {"addresses": [{"value": "127.0.0.1"}]}});
        assert_eq!(
            run("self.status.addresses.size() == 1", obj.clone()),
            Ok(())
        );
        let m = run("self.status.addresses.size() == 2", obj).unwrap_err();
        assert_eq!(
            m.summary,
            "cel `self.status.addresses.size() == 2` was false"
        );
        assert_eq!(
            m.detail,
            "cel `self.status.addresses.size() == 2` was false: self.status.addresses.size() was 1"
        );
    }

    #[test]
    fn and_or_not_and_macros_name_the_part_that_failed() {
        let obj = json!({"spec": {"port": 8080, "hosts": ["a", "b"]}, "metadata": {"name": "x"}});
        // (expression, how its detail ends)
        let cases = [
            (
                "self.spec.port == 8080 && self.metadata.name.startsWith('y')",
                ": self.metadata.name.startsWith(\"y\") was false",
            ),
            (
                "self.spec.hosts.all(h, h == 'a')",
                ": self.spec.hosts.all(h, h == \"a\") was false",
            ),
            ("!has(self.spec.port)", ": has(self.spec.port) was true"),
            (
                "self.spec.port < 100 || 'c' in self.spec.hosts",
                ": self.spec.port was 8080, self.spec.hosts was [\"a\", \"b\"]",
            ),
        ];
        for (expr, ending) in cases {
            let m = run(expr, obj.clone()).unwrap_err();
            assert!(m.detail.ends_with(ending), "{expr}: {}", m.detail);
        }
    }

    #[test]
    fn errors_and_non_booleans_are_misses_too() {
        let m = run("self.status.ready", json!({"spec": {}})).unwrap_err();
        assert!(
            m.summary.starts_with("cel `self.status.ready` failed: "),
            "{}",
            m.summary
        );
        let m = run("self.spec", json!({"spec": {"a": 1}})).unwrap_err();
        assert_eq!(
            m.summary,
            "cel `self.spec` returned {\"a\": 1}, not a boolean"
        );
    }

    #[test]
    fn kubernetes_libraries_are_there() {
        let obj = json!({"spec": {"url": "https://example.com/x", "mem": "1Gi"}});
        assert_eq!(
            run(
                "url(self.spec.url).getHost() == 'example.com' && quantity(self.spec.mem).isGreaterThan(quantity('512Mi'))",
                obj
            ),
            Ok(())
        );
    }

    #[test]
    fn compile_errors_and_unknown_variables() {
        let e = compile("self.x ==").unwrap_err();
        assert!(e.contains("(at character"), "{e}");
        let p = compile("self.a == oldSelf.a && [1].all(x, x > 0)").unwrap();
        assert_eq!(
            unknown_variables(&p, &["self"]),
            vec!["oldSelf".to_string()]
        );
    }
}
