//! Tree-walking evaluation with expr-lang's runtime semantics (`expr/vm/runtime`): missing map
//! keys and unknown names are nil, fetching from nil is an error unless `?.` is used, `/` and
//! `**` give floats, and `&&`/`||` need a boolean on the left.

use std::cell::RefCell;
use std::collections::BTreeMap;

use base64::Engine as _;

use super::Functions;
use super::parser::{BinOp, Expr, Link, LinkKind, Node, SpanError, UnOp};
use super::value::{
    Val, artifact_val, as_origin, chart_val, commit_val, discovered_commit_val,
    discovered_image_val, go_quote, image_val, origin_val,
};
use crate::api::{Chart, DiscoveredArtifacts, FreightOrigin};
use crate::urls::{normalize_chart, normalize_git, normalize_image};

type R<T> = Result<T, SpanError>;

/// Ranges are materialised, so a typo like `1..1e9` must not exhaust memory.
const MAX_RANGE: i64 = 1_000_000;

pub(crate) struct Evaluator<'a> {
    pub(crate) roots: &'a BTreeMap<String, Val>,
    pub(crate) funcs: &'a dyn Functions,
    pub(crate) src: &'a str,
    /// Variables from `let` and the elements predicates are running over, innermost last.
    scope: RefCell<Vec<Frame>>,
}

pub(super) enum Frame {
    Var(String, Val),
    Item {
        item: Val,
        index: usize,
        acc: Option<Val>,
    },
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        roots: &'a BTreeMap<String, Val>,
        funcs: &'a dyn Functions,
        src: &'a str,
    ) -> Self {
        Evaluator {
            roots,
            funcs,
            src,
            scope: RefCell::new(Vec::new()),
        }
    }

    fn var(&self, name: &str) -> Option<Val> {
        self.scope.borrow().iter().rev().find_map(|f| match f {
            Frame::Var(n, v) if n == name => Some(v.clone()),
            _ => None,
        })
    }

    fn pointer(&self, name: Option<&str>, at: usize) -> R<Val> {
        let scope = self.scope.borrow();
        let Some((item, index, acc)) = scope.iter().rev().find_map(|f| match f {
            Frame::Item { item, index, acc } => Some((item, *index, acc)),
            Frame::Var(..) => None,
        }) else {
            return Err(SpanError::new(
                at,
                "cannot use pointer accessor outside predicate",
            ));
        };
        match name {
            None => Ok(item.clone()),
            Some("index") => Ok(Val::Int(index as i64)),
            Some("acc") => acc
                .clone()
                .ok_or_else(|| SpanError::new(at, "#acc is only defined inside reduce")),
            Some(other) => Err(SpanError::new(at, format!("unknown pointer #{other}"))),
        }
    }

    /// Runs `body` with `frame` pushed, popping it whatever the outcome.
    pub(super) fn with_frame<T>(&self, frame: Frame, body: impl FnOnce() -> T) -> T {
        self.scope.borrow_mut().push(frame);
        let out = body();
        self.scope.borrow_mut().pop();
        out
    }

    fn text(&self, start: usize, end: usize) -> &str {
        self.src.get(start..end).unwrap_or("").trim()
    }

    pub(crate) fn eval(&self, e: &Expr) -> R<Val> {
        Ok(match &e.node {
            Node::Nil => Val::Nil,
            Node::Bool(b) => Val::Bool(*b),
            Node::Int(i) => Val::Int(*i),
            Node::Float(f) => Val::Float(*f),
            Node::Str(s) => Val::Str(s.clone()),
            Node::Ident(name) => self.ident(name),
            Node::Array(items) => Val::Array(items.iter().map(|i| self.eval(i)).collect::<R<_>>()?),
            Node::Map(entries) => {
                let mut m = BTreeMap::new();
                for (k, v) in entries {
                    // haul's maps have string keys; other keys are kept as their text.
                    let key = match self.eval(k)? {
                        Val::Str(s) => s,
                        other => other.go_display(),
                    };
                    m.insert(key, self.eval(v)?);
                }
                Val::Map(m)
            }
            Node::Unary(op, operand) => {
                let v = self.eval(operand)?;
                unary(*op, v).map_err(|m| SpanError::new(e.start, m))?
            }
            Node::Binary {
                op,
                at,
                negate,
                left,
                right,
            } => {
                let v = self.binary(*op, *at, left, right)?;
                if *negate {
                    match v {
                        Val::Bool(b) => Val::Bool(!b),
                        other => other,
                    }
                } else {
                    v
                }
            }
            Node::Cond(cond, then, otherwise) => match self.eval(cond)? {
                Val::Bool(true) => match then {
                    Some(t) => self.eval(t)?,
                    None => Val::Bool(true),
                },
                Val::Bool(false) => self.eval(otherwise)?,
                other => {
                    return Err(SpanError::new(
                        cond.start,
                        format!(
                            "the condition of ?: must be a bool, got {} ({})",
                            other.describe(),
                            self.text(cond.start, cond.end)
                        ),
                    ));
                }
            },
            Node::Call(name, args) => self.call(name, args, e.start)?.0,
            Node::Chain(base, links) => self.chain(base, links)?,
            Node::Pointer(name) => self.pointer(name.as_deref(), e.start)?,
            Node::Predicate(_) => {
                return Err(SpanError::new(e.start, "a predicate is not a value"));
            }
            Node::Let(name, value, body) => {
                let v = self.eval(value)?;
                self.with_frame(Frame::Var(name.clone(), v), || self.eval(body))?
            }
            Node::Seq(items) => {
                let mut last = Val::Nil;
                for item in items {
                    last = self.eval(item)?;
                }
                last
            }
        })
    }

    fn ident(&self, name: &str) -> Val {
        if let Some(v) = self.var(name) {
            return v;
        }
        if name == "$env" {
            return Val::Map(self.roots.clone());
        }
        self.roots.get(name).cloned().unwrap_or(Val::Nil)
    }

    /// Evaluates the base of a chain, noting why it is nil when that is worth telling.
    fn base(&self, e: &Expr) -> R<(Val, Option<String>)> {
        match &e.node {
            Node::Ident(name)
                if name != "$env" && !self.roots.contains_key(name) && self.var(name).is_none() =>
            {
                Ok((Val::Nil, Some(format!("{name} is not defined"))))
            }
            Node::Call(name, args) => self.call(name, args, e.start),
            Node::Pointer(name) => {
                let v = self.pointer(name.as_deref(), e.start)?;
                let why = (v == Val::Nil)
                    .then(|| format!("the predicate's #{} is nil", name.as_deref().unwrap_or("")));
                Ok((v, why))
            }
            _ => Ok((self.eval(e)?, None)),
        }
    }

    fn chain(&self, base: &Expr, links: &[Link]) -> R<Val> {
        let (mut cur, mut why_nil) = self.base(base)?;
        for link in links {
            if cur == Val::Nil && link.optional {
                return Ok(Val::Nil);
            }
            let so_far = self.text(base.start, link.start).to_string();
            let key = match &link.kind {
                LinkKind::Member(name) => Val::Str(name.clone()),
                LinkKind::Index(e) => self.eval(e)?,
                LinkKind::Slice(from, to) => {
                    let from = from.as_ref().map(|e| self.eval(e)).transpose()?;
                    let to = to.as_ref().map(|e| self.eval(e)).transpose()?;
                    cur =
                        slice(cur, from, to, &so_far).map_err(|m| SpanError::new(link.start, m))?;
                    why_nil = None;
                    continue;
                }
                LinkKind::Method(name, arg_exprs) => {
                    let vals = arg_exprs
                        .iter()
                        .map(|a| Ok((a.start, self.eval(a)?)))
                        .collect::<R<Vec<_>>>()?;
                    let go_value_result = match &cur {
                        Val::Time(t) => {
                            let a: Vec<Val> = vals.iter().map(|(_, v)| v.clone()).collect();
                            Some(super::time::method(t, name, &a))
                        }
                        Val::Location(tz) if name == "String" && vals.is_empty() => {
                            Some(Ok(Val::Str(super::time::location_name(tz))))
                        }
                        Val::TimeUnit(u) if name == "String" && vals.is_empty() => {
                            Some(Ok(Val::Str(u.name().to_string())))
                        }
                        Val::SemVer(v) => {
                            let a: Vec<Val> = vals.iter().map(|(_, v)| v.clone()).collect();
                            Some(super::semver_value::method(v, name, &a))
                        }
                        _ => None,
                    };
                    if let Some(result) = go_value_result {
                        cur = result.map_err(|m| {
                            SpanError::new(link.start, format!("{so_far}.{name}: {m}"))
                        })?;
                        why_nil = None;
                        continue;
                    }
                    let args = vals
                        .into_iter()
                        .map(|(start, v)| v.to_json().map_err(|m| SpanError::new(start, m)))
                        .collect::<R<Vec<_>>>()?;
                    if let Val::Duration(d) = cur {
                        cur = duration_method(d, name, &args).map_err(|m| {
                            SpanError::new(link.start, format!("{so_far}.{name}: {m}"))
                        })?;
                        why_nil = None;
                        continue;
                    }
                    let Some(result) = self.funcs.method(&so_far, name, &args) else {
                        return Err(SpanError::new(
                            link.start,
                            format!("method calls such as .{name}() are not supported by haul"),
                        ));
                    };
                    cur = result
                        .map(|v| Val::from_json(&v))
                        .map_err(|m| SpanError::new(link.start, format!("{so_far}.{name}: {m}")))?;
                    why_nil = None;
                    continue;
                }
            };
            let (next, why) = fetch(cur, &key, &so_far, why_nil.take())
                .map_err(|m| SpanError::new(link.start, m))?;
            cur = next;
            why_nil = why;
        }
        Ok(cur)
    }

    fn binary(&self, op: BinOp, at: usize, left: &Expr, right: &Expr) -> R<Val> {
        let err = |m: String| SpanError::new(at, m);
        match op {
            BinOp::And | BinOp::Or => {
                let l = self.eval(left)?;
                let Val::Bool(lb) = l else {
                    return Err(err(format!(
                        "the left side of {} must be a bool, got {} ({})",
                        op.symbol(),
                        l.describe(),
                        self.text(left.start, left.end)
                    )));
                };
                // expr's VM short-circuits and passes the right side through unchecked.
                if (op == BinOp::And) != lb {
                    return Ok(Val::Bool(lb));
                }
                self.eval(right)
            }
            BinOp::Coalesce => match self.eval(left)? {
                Val::Nil => self.eval(right),
                v => Ok(v),
            },
            _ => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                binary(op, l, r).map_err(err)
            }
        }
    }

    /// Calls a function; the second value says why a nil result is nil.
    fn call(&self, name: &str, arg_exprs: &[Expr], at: usize) -> R<(Val, Option<String>)> {
        if let Some(Expr {
            node: Node::Predicate(body),
            ..
        }) = arg_exprs.get(1)
        {
            return self.predicate_call(name, arg_exprs, body, at);
        }
        let args = arg_exprs
            .iter()
            .map(|a| self.eval(a))
            .collect::<R<Vec<_>>>()?;
        let call = Call {
            name,
            args: &args,
            arg_exprs,
            ev: self,
        };
        call.run()
            .map_err(|m| SpanError::new(at, format!("{name}: {m}")))
    }
}

struct Call<'a, 'b> {
    name: &'a str,
    args: &'a [Val],
    arg_exprs: &'a [Expr],
    ev: &'a Evaluator<'b>,
}

impl Call<'_, '_> {
    fn count(&self, min: usize, max: usize) -> Result<(), String> {
        let n = self.args.len();
        // Builtins with Go signatures are checked by Go's rules in expr-lang, with Go's words.
        const TYPED: &[&str] = &[
            "type",
            "string",
            "trim",
            "trimPrefix",
            "trimSuffix",
            "upper",
            "lower",
            "split",
            "splitAfter",
            "replace",
            "repeat",
            "join",
            "indexOf",
            "lastIndexOf",
            "hasPrefix",
            "hasSuffix",
            "toJSON",
            "fromJSON",
            "toBase64",
            "fromBase64",
            "sort",
            "bitnot",
        ];
        if TYPED.contains(&self.name) && (n < min || n > max) {
            let what = if n < min { "not enough" } else { "too many" };
            return Err(format!("{what} arguments to call {}", self.name));
        }
        if n < min || n > max {
            let want = match max - min {
                0 => format!("{min}"),
                1 => format!("{min} or {max}"),
                _ => format!("{min} to {max}"),
            };
            // expr-lang's wording.
            return Err(format!(
                "invalid number of arguments (expected {want}, got {n})"
            ));
        }
        Ok(())
    }

    fn arg_text(&self, i: usize) -> &str {
        self.arg_exprs
            .get(i)
            .map_or("", |e| self.ev.text(e.start, e.end))
    }

    fn ordinal(i: usize) -> &'static str {
        ["first", "second", "third", "fourth"]
            .get(i)
            .copied()
            .unwrap_or("an")
    }

    fn wrong(&self, i: usize, want: &str) -> String {
        let got = self
            .args
            .get(i)
            .map_or("nothing".to_string(), Val::describe);
        format!(
            "{} argument must be {want}, got {got} ({})",
            Self::ordinal(i),
            self.arg_text(i)
        )
    }

    fn string(&self, i: usize) -> Result<&str, String> {
        match self.args.get(i) {
            Some(Val::Str(s)) => Ok(s),
            _ => Err(self.wrong(i, "a string")),
        }
    }

    fn int(&self, i: usize) -> Result<i64, String> {
        match self.args.get(i) {
            Some(Val::Int(n)) => Ok(*n),
            Some(Val::Float(f)) if f.fract() == 0.0 => Ok(*f as i64),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    fn origin(&self, i: usize) -> Result<FreightOrigin, String> {
        self.args
            .get(i)
            .and_then(as_origin)
            .ok_or_else(|| self.wrong(i, "a Freight origin from warehouse(name)"))
    }

    fn one_string(&self) -> Result<&str, String> {
        self.count(1, 1)?;
        self.string(0)
    }

    fn run(&self) -> Result<(Val, Option<String>), String> {
        let v = match self.name {
            // Kargo's functions (pkg/expressions, pkg/expressions/function).
            "quote" => {
                self.count(1, 1)?;
                match &self.args[0] {
                    Val::Str(s) => Val::Str(go_quote(s)),
                    other => Val::Str(format!("\"{}\"", other.go_json()?)),
                }
            }
            "unsafeQuote" => {
                self.count(1, 1)?;
                Val::Str(format!("\"{}\"", self.args[0].go_json()?))
            }
            "asJSON" => {
                self.count(1, 1)?;
                Val::Str(format!("\"{}\n\"", self.args[0].go_json_indent("  ")?))
            }
            "warehouse" => {
                let name = self.one_string()?;
                if name.is_empty() {
                    return Err("name must not be empty".to_string());
                }
                origin_val(&FreightOrigin::warehouse(name))
            }
            "imageFrom" | "commitFrom" => return self.artifact(),
            "chartFrom" => return self.chart(),
            "success" | "failure" | "always" => {
                self.count(0, 0)?;
                Val::Bool(match self.name {
                    "success" => !self.ev.funcs.any_failed(),
                    "failure" => self.ev.funcs.any_failed(),
                    _ => true,
                })
            }
            "status" => {
                let alias = self.one_string()?;
                if alias.is_empty() {
                    return Err("argument must not be empty".to_string());
                }
                Val::Str(self.ev.funcs.step_status(alias).unwrap_or_default())
            }
            "semverDiff" => {
                self.count(2, 2)?;
                Val::Str(semver_diff(self.string(0)?, self.string(1)?).to_string())
            }
            "secret" | "configMap" | "sharedSecret" | "sharedConfigMap" => {
                let name = self.one_string()?;
                let f = self.ev.funcs;
                Val::StrMap(match self.name {
                    "secret" => f.secret(name),
                    "configMap" => f.config_map(name),
                    "sharedSecret" => f.shared_secret(name),
                    _ => f.shared_config_map(name),
                }?)
            }
            "freightMetadata" | "stageMetadata" => {
                // Kargo's older two-argument form returns one key's value.
                self.count(1, 2)?;
                let name = self.string(0)?;
                let key = if self.args.len() == 2 {
                    Some(self.string(1)?)
                } else {
                    None
                };
                if name.is_empty() {
                    return Err("name must not be empty".to_string());
                }
                let found = if self.name == "freightMetadata" {
                    self.ev.funcs.freight_metadata(name)?
                } else {
                    self.ev.funcs.stage_metadata(name)?
                };
                match found {
                    Some(m) => match key {
                        None => Val::from_json(&serde_json::Value::Object(m)),
                        Some(k) => match m.get(k) {
                            Some(v) => Val::from_json(v),
                            None => Val::Nil,
                        },
                    },
                    None => {
                        let what = if self.name == "freightMetadata" {
                            "Freight"
                        } else {
                            "Stage"
                        };
                        return Ok((Val::Nil, Some(format!("{what} {name:?} has no metadata"))));
                    }
                }
            }
            "asYAML" => {
                self.count(1, 1)?;
                Val::Str(format!("\"{}\"", super::go_yaml::to_yaml(&self.args[0])?))
            }
            "semverParse" => super::semver_value::parse(self.one_string()?)?,
            "artifactFrom" => return self.generic_artifact(),
            "freightStatus" => {
                let name = self.one_string()?;
                if name.is_empty() {
                    return Err("name must not be empty".to_string());
                }
                match self.ev.funcs.freight_status(name)? {
                    // Kargo hands over the status through a JSON round trip.
                    Some(m) => Val::from_go_json(&serde_json::Value::Object(m)),
                    None => {
                        return Ok((Val::Nil, Some(format!("there is no Freight {name:?}"))));
                    }
                }
            }
            name => match self.context_function(name)? {
                Some(v) => v,
                None => builtin(self)?,
            },
        };
        Ok((v, None))
    }

    /// A function only the context has (the generic webhook receiver's `normalizeGit`, …).
    fn context_function(&self, name: &str) -> Result<Option<Val>, String> {
        let args = self
            .args
            .iter()
            .map(Val::to_json)
            .collect::<Result<Vec<_>, _>>()?;
        match self.ev.funcs.function(name, &args) {
            Some(result) => result.map(|v| Some(Val::from_json(&v))),
            None => Ok(None),
        }
    }

    fn artifact(&self) -> Result<(Val, Option<String>), String> {
        if let Some(d) = self.ev.funcs.discovered_artifacts() {
            return self.discovered_artifact(d);
        }
        self.count(1, 2)?;
        let repo = self.string(0)?;
        let origin = if self.args.len() == 2 {
            Some(self.origin(1)?)
        } else {
            None
        };
        let f = self.ev.funcs;
        let (found, what) = if self.name == "imageFrom" {
            (
                f.image_from(repo, origin.as_ref())?.map(|i| image_val(&i)),
                "image",
            )
        } else {
            (
                f.commit_from(repo, origin.as_ref())?
                    .map(|c| commit_val(&c)),
                "commit",
            )
        };
        Ok(match found {
            Some(v) => (v, None),
            None => (Val::Nil, Some(not_found(what, repo, None, origin.as_ref()))),
        })
    }

    /// `imageFrom(repo)` / `commitFrom(repo)` over a Warehouse's discovery: the newest
    /// artifact of the first result for the repository (compared normalised) that has one.
    fn discovered_artifact(
        &self,
        d: &DiscoveredArtifacts,
    ) -> Result<(Val, Option<String>), String> {
        let repo = self.one_string()?;
        let (found, what) = if self.name == "imageFrom" {
            let want = normalize_image(repo);
            let found = d
                .images
                .iter()
                .filter(|r| normalize_image(&r.repo_url) == want)
                .find_map(|r| r.references.first())
                .map(discovered_image_val);
            (found, "image")
        } else {
            let want = normalize_git(repo);
            let found = d
                .git
                .iter()
                .filter(|r| normalize_git(&r.repo_url) == want)
                .find_map(|r| r.commits.first())
                .map(discovered_commit_val);
            (found, "commit")
        };
        Ok(match found {
            Some(v) => (v, None),
            None => (Val::Nil, Some(not_discovered(what, repo, None))),
        })
    }

    /// `artifactFrom(subscription[, origin])`: a generic subscription's artifact from the
    /// Freight being promoted, or, in `freightCreationCriteria`, the newest discovered one (the
    /// last result of that subscription with any, as Kargo's loop picks it).
    fn generic_artifact(&self) -> Result<(Val, Option<String>), String> {
        let found = if let Some(d) = self.ev.funcs.discovered_artifacts() {
            let name = self.one_string()?;
            d.results
                .iter()
                .filter(|r| r.subscription_name == name)
                .filter_map(|r| r.artifact_references.first())
                .next_back()
                .cloned()
        } else {
            self.count(1, 2)?;
            let name = self.string(0)?;
            let origin = if self.args.len() == 2 {
                Some(self.origin(1)?)
            } else {
                None
            };
            self.ev.funcs.artifact_from(name, origin.as_ref())?
        };
        Ok(match found {
            Some(a) => (artifact_val(&a), None),
            None => (
                Val::Nil,
                Some(format!(
                    "artifactFrom found no artifact from subscription {:?}",
                    self.string(0).unwrap_or_default()
                )),
            ),
        })
    }

    /// `chartFrom(repo[, name])` over a Warehouse's discovery; an empty name matches any chart.
    fn discovered_chart(&self, d: &DiscoveredArtifacts) -> Result<(Val, Option<String>), String> {
        self.count(1, 2)?;
        let repo = self.string(0)?;
        let name = if self.args.len() == 2 {
            self.string(1)?
        } else {
            ""
        };
        let want = normalize_chart(repo);
        let found = d
            .charts
            .iter()
            .filter(|r| normalize_chart(&r.repo_url) == want)
            .filter(|r| name.is_empty() || r.name.as_deref().unwrap_or("") == name)
            .find_map(|r| {
                r.versions.first().map(|v| Chart {
                    repo_url: Some(want.clone()),
                    name: r.name.clone(),
                    version: Some(v.clone()),
                    subscription_name: None,
                })
            });
        Ok(match found {
            Some(c) => (chart_val(&c), None),
            None => (
                Val::Nil,
                Some(not_discovered(
                    "chart",
                    repo,
                    Some(name).filter(|n| !n.is_empty()),
                )),
            ),
        })
    }

    fn chart(&self) -> Result<(Val, Option<String>), String> {
        if let Some(d) = self.ev.funcs.discovered_artifacts() {
            return self.discovered_chart(d);
        }
        self.count(1, 3)?;
        let repo = self.string(0)?;
        let mut name = None;
        let mut origin = None;
        if let Some(second) = self.args.get(1) {
            match second {
                Val::Str(s) => name = Some(s.as_str()),
                _ => {
                    origin = Some(
                        as_origin(second)
                            .ok_or_else(|| self.wrong(1, "a string or a Freight origin"))?,
                    )
                }
            }
        }
        if self.args.len() == 3 {
            if name.is_none() {
                return Err(self.wrong(1, "a chart name (a string) when there are three arguments"));
            }
            origin = Some(self.origin(2)?);
        }
        let found = self.ev.funcs.chart_from(repo, name, origin.as_ref())?;
        Ok(match found {
            Some(c) => (chart_val(&c), None),
            None => (
                Val::Nil,
                Some(not_found("chart", repo, name, origin.as_ref())),
            ),
        })
    }
}

fn not_found(what: &str, repo: &str, name: Option<&str>, origin: Option<&FreightOrigin>) -> String {
    let name = name.map(|n| format!(" named {n:?}")).unwrap_or_default();
    let origin = origin.map(|o| format!(" from {o}")).unwrap_or_default();
    format!("{what}From found no {what}{name} from repository {repo:?} in the Freight{origin}")
}

fn not_discovered(what: &str, repo: &str, name: Option<&str>) -> String {
    let name = name.map(|n| format!(" named {n:?}")).unwrap_or_default();
    format!(
        "{what}From found no {what}{name} from repository {repo:?} among the discovered artifacts"
    )
}

/// expr-lang's built-in functions that Kargo configurations use.
fn builtin(c: &Call<'_, '_>) -> Result<Val, String> {
    let a = c.args;
    Ok(match c.name {
        "len" => {
            c.count(1, 1)?;
            Val::Int(match &a[0] {
                Val::Str(s) => s.chars().count(),
                Val::Array(v) => v.len(),
                Val::Map(m) => m.len(),
                Val::StrMap(m) => m.len(),
                other => {
                    return Err(format!(
                        "invalid argument for len (type {})",
                        other.type_name()
                    ));
                }
            } as i64)
        }
        "upper" => Val::Str(c.one_string()?.to_uppercase()),
        "lower" => Val::Str(c.one_string()?.to_lowercase()),
        "trim" | "trimPrefix" | "trimSuffix" => {
            c.count(if c.name == "trim" { 1 } else { 2 }, 2)?;
            let s = c.string(0)?;
            Val::Str(match (c.name, a.len()) {
                ("trim", 1) => s.trim().to_string(),
                ("trim", _) => {
                    let cut = c.string(1)?;
                    s.trim_matches(|ch| cut.contains(ch)).to_string()
                }
                ("trimPrefix", _) => s.strip_prefix(c.string(1)?).unwrap_or(s).to_string(),
                _ => s.strip_suffix(c.string(1)?).unwrap_or(s).to_string(),
            })
        }
        "split" => {
            c.count(2, 3)?;
            let s = c.string(0)?;
            let sep = c.string(1)?;
            let n = if a.len() == 3 { c.int(2)? } else { -1 };
            Val::Array(go_split(s, sep, n).into_iter().map(Val::Str).collect())
        }
        "replace" => {
            c.count(3, 4)?;
            let (s, old, new) = (c.string(0)?, c.string(1)?, c.string(2)?);
            // Go's strings.Replace: a negative count replaces all.
            match a.len() {
                4 => match usize::try_from(c.int(3)?) {
                    Ok(n) => Val::Str(s.replacen(old, new, n)),
                    Err(_) => Val::Str(s.replace(old, new)),
                },
                _ => Val::Str(s.replace(old, new)),
            }
        }
        "splitAfter" => {
            c.count(2, 3)?;
            let s = c.string(0)?;
            let sep = c.string(1)?;
            let n = if a.len() == 3 { c.int(2)? } else { -1 };
            Val::Array(
                go_split_after(s, sep, n)
                    .into_iter()
                    .map(Val::Str)
                    .collect(),
            )
        }
        "repeat" => {
            c.count(2, 2)?;
            let n = c.int(1)?;
            let n = usize::try_from(n).map_err(|_| "negative repeat count".to_string())?;
            Val::Str(c.string(0)?.repeat(n))
        }
        "indexOf" | "lastIndexOf" => {
            c.count(2, 2)?;
            let (s, sub) = (c.string(0)?, c.string(1)?);
            let found = if c.name == "indexOf" {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            // expr counts in characters, not bytes.
            Val::Int(found.map_or(-1, |b| s[..b].chars().count() as i64))
        }
        "hasPrefix" | "hasSuffix" => {
            c.count(2, 2)?;
            let (s, p) = (c.string(0)?, c.string(1)?);
            Val::Bool(if c.name == "hasPrefix" {
                s.starts_with(p)
            } else {
                s.ends_with(p)
            })
        }
        "join" => {
            c.count(1, 2)?;
            let sep = if a.len() == 2 { c.string(1)? } else { "" };
            let Val::Array(items) = &a[0] else {
                return Err(c.wrong(0, "an array of strings"));
            };
            let parts = items
                .iter()
                .map(|v| match v {
                    Val::Str(s) => Ok(s.as_str()),
                    _ => Err(c.wrong(0, "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Val::Str(parts.join(sep))
        }
        "string" => {
            c.count(1, 1)?;
            Val::Str(a[0].go_display())
        }
        "int" => {
            c.count(1, 1)?;
            match &a[0] {
                Val::Int(i) => Val::Int(*i),
                Val::TimeUnit(u) => Val::Int(u.number()),
                Val::Float(f) => Val::Int(*f as i64),
                Val::Str(s) => Val::Int(
                    s.parse::<i64>()
                        .map_err(|_| format!("invalid syntax for int: {s:?}"))?,
                ),
                other => return Err(format!("invalid operation: int({})", other.type_name())),
            }
        }
        "float" => {
            c.count(1, 1)?;
            match &a[0] {
                Val::Int(i) => Val::Float(*i as f64),
                Val::Float(f) => Val::Float(*f),
                Val::Str(s) => Val::Float(
                    parse_go_float(s).ok_or_else(|| format!("invalid syntax for float: {s:?}"))?,
                ),
                other => return Err(format!("invalid operation: float({})", other.type_name())),
            }
        }
        "toJSON" => {
            c.count(1, 1)?;
            Val::Str(a[0].go_json_indent("  ")?)
        }
        "fromJSON" => {
            let s = c.one_string()?;
            let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
            Val::from_go_json(&v)
        }
        "toBase64" => Val::Str(base64::engine::general_purpose::STANDARD.encode(c.one_string()?)),
        "fromBase64" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(c.one_string()?)
                .map_err(|e| e.to_string())?;
            Val::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
        "keys" | "values" => {
            c.count(1, 1)?;
            let keys_only = c.name == "keys";
            match &a[0] {
                Val::Map(m) => Val::Array(if keys_only {
                    m.keys().map(|k| Val::Str(k.clone())).collect()
                } else {
                    m.values().cloned().collect()
                }),
                Val::StrMap(m) => Val::Array(if keys_only {
                    m.keys().map(|k| Val::Str(k.clone())).collect()
                } else {
                    m.values().map(|v| Val::Str(v.clone())).collect()
                }),
                _ => return Err(c.wrong(0, "a map")),
            }
        }
        "first" | "last" => {
            c.count(1, 1)?;
            match &a[0] {
                Val::Array(v) => {
                    let item = if c.name == "first" {
                        v.first()
                    } else {
                        v.last()
                    };
                    item.cloned().unwrap_or(Val::Nil)
                }
                _ => return Err(c.wrong(0, "an array")),
            }
        }
        "get" => {
            c.count(2, 2)?;
            // Unlike `a[b]`, get() gives nil for a missing key or index, but still refuses
            // what cannot be indexed at all.
            match &a[0] {
                Val::Nil => Val::Nil,
                Val::Array(_) | Val::Str(_) | Val::Map(_) | Val::StrMap(_) | Val::Struct(_) => {
                    fetch(a[0].clone(), &a[1], "", None)
                        .map(|(v, _)| v)
                        .unwrap_or(Val::Nil)
                }
                other => {
                    return Err(format!(
                        "type {} does not support indexing",
                        other.type_name()
                    ));
                }
            }
        }
        "abs" => {
            c.count(1, 1)?;
            match &a[0] {
                Val::Int(i) => Val::Int(i.wrapping_abs()),
                Val::Float(f) => Val::Float(f.abs()),
                other => {
                    return Err(format!(
                        "invalid argument for abs (type {})",
                        other.type_name()
                    ));
                }
            }
        }
        "ceil" | "floor" | "round" => {
            c.count(1, 1)?;
            let f = match &a[0] {
                Val::Int(i) => *i as f64,
                Val::Float(f) => *f,
                _ => return Err(c.wrong(0, "a number")),
            };
            Val::Float(match c.name {
                "ceil" => f.ceil(),
                "floor" => f.floor(),
                _ => f.round(),
            })
        }
        "max" | "min" => {
            if a.is_empty() {
                return Err(format!("not enough arguments to call {}", c.name));
            }
            let mut nums = Vec::new();
            numbers(c.name, a, &mut nums)?;
            let mut best: Option<Val> = None;
            for v in nums {
                let better = match &best {
                    None => true,
                    Some(b) if c.name == "max" => less(b, &v)?,
                    Some(b) => less(&v, b)?,
                };
                if better {
                    best = Some(v);
                }
            }
            best.unwrap_or(Val::Nil)
        }
        "mean" | "median" => {
            if a.is_empty() {
                return Err(format!("not enough arguments to call {}", c.name));
            }
            let mut nums = Vec::new();
            numbers(c.name, a, &mut nums)?;
            let mut fs: Vec<f64> = nums.iter().filter_map(as_f64).collect();
            let n = fs.len();
            Val::Float(if n == 0 {
                0.0
            } else if c.name == "mean" {
                fs.iter().sum::<f64>() / n as f64
            } else {
                fs.sort_by(f64::total_cmp);
                if n % 2 == 1 {
                    fs[n / 2]
                } else {
                    (fs[n / 2 - 1] + fs[n / 2]) / 2.0
                }
            })
        }
        "sum" | "count" => {
            c.count(1, 1)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot iterate over {}", a[0].describe()));
            };
            if c.name == "sum" {
                let mut total = Val::Int(0);
                for v in items {
                    total = add(total, v.clone())?;
                }
                total
            } else {
                let mut n = 0;
                for v in items {
                    match v {
                        Val::Bool(b) => n += i64::from(*b),
                        other => {
                            return Err(format!(
                                "predicate should return boolean, got {}",
                                other.describe()
                            ));
                        }
                    }
                }
                Val::Int(n)
            }
        }
        "take" => {
            c.count(2, 2)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot take from {}", a[0].type_name()));
            };
            let Val::Int(n) = a[1] else {
                return Err(format!("cannot take {} elements", a[1].type_name()));
            };
            let n = usize::try_from(n).unwrap_or(0).min(items.len());
            Val::Array(items[..n].to_vec())
        }
        "toPairs" => {
            c.count(1, 1)?;
            let pair = |k: &str, v: Val| Val::Array(vec![Val::Str(k.to_string()), v]);
            Val::Array(match &a[0] {
                Val::Map(m) => m.iter().map(|(k, v)| pair(k, v.clone())).collect(),
                Val::StrMap(m) => m
                    .iter()
                    .map(|(k, v)| pair(k, Val::Str(v.clone())))
                    .collect(),
                other => return Err(format!("cannot transform {} to pairs", other.type_name())),
            })
        }
        "fromPairs" => {
            c.count(1, 1)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot transform {} from pairs", a[0].go_display()));
            };
            let mut out = BTreeMap::new();
            for item in items {
                match item {
                    Val::Array(p) if p.len() == 2 => {
                        let key = match &p[0] {
                            Val::Str(s) => s.clone(),
                            other => other.go_display(),
                        };
                        out.insert(key, p[1].clone());
                    }
                    Val::Array(_) => {
                        return Err(format!("invalid pair length {}", item.go_display()));
                    }
                    other => return Err(format!("invalid pair {}", other.go_display())),
                }
            }
            Val::Map(out)
        }
        "reverse" => {
            c.count(1, 1)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot reverse {}", a[0].type_name()));
            };
            Val::Array(items.iter().rev().cloned().collect())
        }
        "uniq" => {
            c.count(1, 1)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot uniq {}", a[0].type_name()));
            };
            let mut out: Vec<Val> = Vec::new();
            for v in items {
                if !out.iter().any(|o| equal(o, v)) {
                    out.push(v.clone());
                }
            }
            Val::Array(out)
        }
        "concat" => {
            if a.is_empty() {
                return Err("invalid number of arguments (expected at least 1, got 0)".to_string());
            }
            let mut out = Vec::new();
            for v in a {
                match v {
                    Val::Array(items) => out.extend(items.iter().cloned()),
                    other => return Err(format!("cannot concat {}", other.type_name())),
                }
            }
            Val::Array(out)
        }
        "flatten" => {
            c.count(1, 1)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot flatten {}", a[0].type_name()));
            };
            let mut out = Vec::new();
            flatten_into(items, &mut out, 0)?;
            Val::Array(out)
        }
        "sort" => {
            c.count(1, 2)?;
            let Val::Array(items) = &a[0] else {
                return Err(format!("cannot sort {}", a[0].type_name()));
            };
            let desc = match a.get(1) {
                None => false,
                Some(Val::Str(s)) if s == "asc" => false,
                Some(Val::Str(s)) if s == "desc" => true,
                Some(Val::Str(s)) => {
                    return Err(format!("invalid order {s}, expected asc or desc"));
                }
                Some(other) => {
                    return Err(format!(
                        "sort order argument must be a string (got {})",
                        other.type_name()
                    ));
                }
            };
            let mut pairs: Vec<(Val, Val)> = items.iter().map(|v| (v.clone(), Val::Nil)).collect();
            super::predicates::sort_values(&mut pairs, desc)?;
            Val::Array(pairs.into_iter().map(|(v, _)| v).collect())
        }
        "bitand" | "bitor" | "bitxor" | "bitnand" | "bitshl" | "bitshr" | "bitushr" => {
            c.count(2, 2)?;
            let (x, y) = match (&a[0], &a[1]) {
                (Val::Int(x), Val::Int(y)) => (x, y),
                (Val::Int(_), other) | (other, _) => {
                    return Err(format!(
                        "cannot use {} as argument (type int) to call {}",
                        other.type_name(),
                        c.name
                    ));
                }
            };
            let (x, y) = (*x, *y);
            let shift = || {
                u32::try_from(y)
                    .map_err(|_| format!("invalid operation: negative shift count {y} (type int)"))
            };
            Val::Int(match c.name {
                "bitand" => x & y,
                "bitor" => x | y,
                "bitxor" => x ^ y,
                "bitnand" => x & !y,
                "bitshl" => x.checked_shl(shift()?).unwrap_or(0),
                "bitshr" => x
                    .checked_shr(shift()?)
                    .unwrap_or(if x < 0 { -1 } else { 0 }),
                _ => (x as u64).checked_shr(shift()?).unwrap_or(0) as i64,
            })
        }
        "bitnot" => {
            c.count(1, 1)?;
            match a[0] {
                Val::Int(x) => Val::Int(!x),
                ref other => {
                    return Err(format!(
                        "cannot use {} as argument (type int) to call bitnot",
                        other.type_name()
                    ));
                }
            }
        }
        "type" => {
            c.count(1, 1)?;
            Val::Str(a[0].type_name().to_string())
        }
        "duration" => Val::Duration(super::duration::parse_go_duration(c.one_string()?)?),
        "now" => match a {
            [] => super::time::now(None),
            [Val::Location(tz)] => super::time::now(Some(tz)),
            _ => {
                return Err(format!(
                    "invalid number of arguments (expected 0, got {})",
                    a.len()
                ));
            }
        },
        "date" => super::time::date(a)?,
        "timezone" => {
            c.count(1, 1)?;
            match &a[0] {
                Val::Str(name) => Val::Location(Box::new(super::time::load_location(name)?)),
                other => {
                    return Err(format!(
                        "cannot use {} as argument (type string) to call timezone",
                        other.type_name()
                    ));
                }
            }
        }
        "map" | "filter" | "all" | "any" | "one" | "none" | "find" | "findIndex" | "findLast"
        | "findLastIndex" | "groupBy" | "sortBy" | "reduce" => {
            return Err("expects a predicate as its second argument".to_string());
        }
        _ => return Err("unknown function".to_string()),
    })
}

/// The methods of Go's `time.Duration`.
fn duration_method(d: i64, name: &str, args: &[serde_json::Value]) -> Result<Val, String> {
    if !args.is_empty() {
        return Err(format!("too many arguments to call {name}"));
    }
    let secs = d as f64 / 1e9;
    Ok(match name {
        "Hours" => Val::Float(secs / 3600.0),
        "Minutes" => Val::Float(secs / 60.0),
        "Seconds" => Val::Float(secs),
        "Milliseconds" => Val::Int(d / 1_000_000),
        "Microseconds" => Val::Int(d / 1_000),
        "Nanoseconds" => Val::Int(d),
        "String" => Val::Str(super::duration::go_duration_string(d)),
        "Abs" => Val::Duration(d.wrapping_abs()),
        other => return Err(format!("type time.Duration has no method {other}")),
    })
}

/// Arrays nest at most this deep in min/max/mean/median/flatten, as expr's `MaxDepth`.
const MAX_DEPTH: usize = 10_000;

/// The numbers among `args`, arrays flattened, for min/max/mean/median.
fn numbers(name: &str, args: &[Val], out: &mut Vec<Val>) -> Result<(), String> {
    fn walk(name: &str, v: &Val, out: &mut Vec<Val>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("recursion depth exceeded".to_string());
        }
        match v {
            Val::Int(_) | Val::Float(_) => out.push(v.clone()),
            Val::Array(items) => {
                for i in items {
                    walk(name, i, out, depth + 1)?;
                }
            }
            other => {
                return Err(format!(
                    "invalid argument for {name} (type {})",
                    other.type_name()
                ));
            }
        }
        Ok(())
    }
    for v in args {
        walk(name, v, out, 0)?;
    }
    Ok(())
}

fn flatten_into(items: &[Val], out: &mut Vec<Val>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("recursion depth exceeded".to_string());
    }
    for v in items {
        match v {
            Val::Array(inner) => flatten_into(inner, out, depth + 1)?,
            other => out.push(other.clone()),
        }
    }
    Ok(())
}

/// Go's `strings.SplitAfter` / `strings.SplitAfterN`.
fn go_split_after(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        return go_split(s, sep, n);
    }
    let mut parts: Vec<String> = s.split_inclusive(sep).map(String::from).collect();
    if s.is_empty() || s.ends_with(sep) {
        parts.push(String::new());
    }
    if n > 0 {
        let n = n as usize;
        if parts.len() > n {
            let rest = parts.split_off(n - 1);
            parts.push(rest.concat());
        }
    }
    parts
}

/// expr's `runtime.Less`, for sorting and min/max.
pub(super) fn less(a: &Val, b: &Val) -> Result<bool, String> {
    compare(BinOp::Lt, a.clone(), b.clone())
}

/// expr's `runtime.Add`, for sum.
pub(super) fn add(a: Val, b: Val) -> Result<Val, String> {
    binary(BinOp::Add, a, b)
}

/// Go's `strings.Split` / `strings.SplitN`.
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let mut parts: Vec<String> = if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(String::from).collect()
    };
    if n > 0 {
        let n = n as usize;
        if parts.len() > n {
            let rest = parts.split_off(n - 1);
            parts.push(rest.join(sep));
        }
    }
    parts
}

fn semver_parts(v: &str) -> Option<(u64, u64, u64, String)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (v, meta) = match v.split_once('+') {
        Some((v, m)) => (v, m),
        None => (v, ""),
    };
    let valid_ids = |s: &str| {
        s.split('.')
            .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    };
    if v.contains('+') || (!meta.is_empty() && !valid_ids(meta)) || v.ends_with('+') {
        return None;
    }
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    if pre.is_some_and(|p| !valid_ids(p)) {
        return None;
    }
    let nums: Vec<&str> = core.split('.').collect();
    if nums.is_empty() || nums.len() > 3 {
        return None;
    }
    let mut out = [0u64; 3];
    for (i, n) in nums.iter().enumerate() {
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        out[i] = n.parse().ok()?;
    }
    Some((out[0], out[1], out[2], meta.to_string()))
}

/// Kargo's `semverDiff`, with Masterminds/semver's lenient parsing (`v` prefix, missing minor or
/// patch). Prerelease differences are not reported, as in Kargo.
fn semver_diff(a: &str, b: &str) -> &'static str {
    let (Some(a), Some(b)) = (semver_parts(a), semver_parts(b)) else {
        return "Incomparable";
    };
    if a.0 != b.0 {
        "Major"
    } else if a.1 != b.1 {
        "Minor"
    } else if a.2 != b.2 {
        "Patch"
    } else if a.3 != b.3 {
        "Metadata"
    } else {
        "None"
    }
}

/// Go's `strconv.ParseFloat(s, 64)`, which is stricter than Rust's parser about what it reads
/// as infinity and which reports overflow as an error.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        let inf = f64::INFINITY;
        return Some(if s.starts_with('-') { -inf } else { inf });
    }
    if lower == "nan" {
        return (body.len() == s.len()).then_some(f64::NAN);
    }
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '0'..='9' => seen_digit = true,
            '.' if !seen_dot => seen_dot = true,
            'e' | 'E' if seen_digit => break,
            _ => return None,
        }
        chars.next();
    }
    if !seen_digit {
        return None;
    }
    if chars.next().is_some() {
        let exp: String = chars.collect();
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(&exp);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let f: f64 = s.parse().ok()?;
    // Out of range is an error in Go.
    f.is_finite().then_some(f)
}

fn unary(op: UnOp, v: Val) -> Result<Val, String> {
    match (op, v) {
        (UnOp::Not, Val::Bool(b)) => Ok(Val::Bool(!b)),
        (UnOp::Neg, Val::Int(i)) => Ok(Val::Int(i.wrapping_neg())),
        (UnOp::Neg, Val::Float(f)) => Ok(Val::Float(-f)),
        (UnOp::Plus, v @ (Val::Int(_) | Val::Float(_))) => Ok(v),
        (op, v) => {
            let sym = match op {
                UnOp::Not => "!",
                UnOp::Neg => "-",
                UnOp::Plus => "+",
            };
            Err(format!("invalid operation: {sym} ({})", v.describe()))
        }
    }
}

fn mismatched(op: BinOp, l: &Val, r: &Val) -> String {
    format!(
        "invalid operation: {} (mismatched types {} and {})",
        op.symbol(),
        l.type_name(),
        r.type_name()
    )
}

fn as_f64(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    }
}

/// expr's `runtime.Equal`: numbers compare across int and float, other types must match.
pub(crate) fn equal(l: &Val, r: &Val) -> bool {
    match (l, r) {
        (Val::Int(a), Val::Int(b)) => a == b,
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => as_f64(l) == as_f64(r),
        // expr-lang compares times with Time.Equal: the same instant, whatever the zone.
        (Val::Time(a), Val::Time(b)) => super::time::cmp(a, b).is_eq(),
        (Val::Array(a), Val::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y))
        }
        (Val::Map(a), Val::Map(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => l == r,
    }
}

fn compare(op: BinOp, l: Val, r: Val) -> Result<bool, String> {
    use std::cmp::Ordering;
    let ord = match (&l, &r) {
        (Val::Int(a), Val::Int(b)) | (Val::Duration(a), Val::Duration(b)) => a.cmp(b),
        (Val::Str(a), Val::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Val::Time(a), Val::Time(b)) => super::time::cmp(a, b),
        _ => match (as_f64(&l), as_f64(&r)) {
            (Some(a), Some(b)) => match a.partial_cmp(&b) {
                Some(o) => o,
                // NaN compares false with everything.
                None => return Ok(false),
            },
            _ => return Err(mismatched(op, &l, &r)),
        },
    };
    Ok(match op {
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Le => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

fn binary(op: BinOp, l: Val, r: Val) -> Result<Val, String> {
    let strings = |l: &Val, r: &Val| match (l, r) {
        (Val::Str(a), Val::Str(b)) => Ok((a.clone(), b.clone())),
        _ => Err(mismatched(op, l, r)),
    };
    Ok(match op {
        BinOp::Eq => Val::Bool(equal(&l, &r)),
        BinOp::Ne => Val::Bool(!equal(&l, &r)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => Val::Bool(compare(op, l, r)?),
        BinOp::Add => match (&l, &r) {
            (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_add(*b)),
            (Val::Duration(a), Val::Duration(b)) => Val::Duration(a.wrapping_add(*b)),
            (Val::Time(t), Val::Duration(d)) | (Val::Duration(d), Val::Time(t)) => {
                super::time::add(t, *d)?
            }
            (Val::Str(a), Val::Str(b)) => Val::Str(format!("{a}{b}")),
            (Val::Array(a), Val::Array(b)) => Val::Array(a.iter().chain(b).cloned().collect()),
            _ => match (as_f64(&l), as_f64(&r)) {
                (Some(a), Some(b)) => Val::Float(a + b),
                _ => return Err(mismatched(op, &l, &r)),
            },
        },
        BinOp::Sub | BinOp::Mul => match (&l, &r) {
            (Val::Duration(a), Val::Duration(b)) if op == BinOp::Sub => {
                Val::Duration(a.wrapping_sub(*b))
            }
            (Val::Time(a), Val::Time(b)) if op == BinOp::Sub => {
                Val::Duration(super::time::sub(a, b))
            }
            (Val::Time(t), Val::Duration(d)) if op == BinOp::Sub => {
                super::time::add(t, d.wrapping_neg())?
            }
            // Go's `d * n`; with a float, expr-lang multiplies the nanoseconds as floats.
            (Val::Duration(d), Val::Int(n)) | (Val::Int(n), Val::Duration(d))
                if op == BinOp::Mul =>
            {
                Val::Duration(d.wrapping_mul(*n))
            }
            (Val::Duration(d), Val::Float(f)) | (Val::Float(f), Val::Duration(d))
                if op == BinOp::Mul =>
            {
                Val::Float(*d as f64 * f)
            }
            (Val::Int(a), Val::Int(b)) => Val::Int(if op == BinOp::Sub {
                a.wrapping_sub(*b)
            } else {
                a.wrapping_mul(*b)
            }),
            _ => match (as_f64(&l), as_f64(&r)) {
                (Some(a), Some(b)) => Val::Float(if op == BinOp::Sub { a - b } else { a * b }),
                _ => return Err(mismatched(op, &l, &r)),
            },
        },
        BinOp::Div => match (as_f64(&l), as_f64(&r)) {
            (Some(a), Some(b)) => Val::Float(a / b),
            _ => return Err(mismatched(op, &l, &r)),
        },
        BinOp::Mod => match (&l, &r) {
            (Val::Int(_), Val::Int(0)) => return Err("integer divide by zero".to_string()),
            (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_rem(*b)),
            _ => return Err(mismatched(op, &l, &r)),
        },
        BinOp::Pow => match (as_f64(&l), as_f64(&r)) {
            (Some(a), Some(b)) => Val::Float(a.powf(b)),
            _ => return Err(mismatched(op, &l, &r)),
        },
        BinOp::Range => match (&l, &r) {
            (Val::Int(a), Val::Int(b)) => {
                if b.saturating_sub(*a) >= MAX_RANGE {
                    return Err(format!("range {a}..{b} is too large"));
                }
                Val::Array((*a..=*b).map(Val::Int).collect())
            }
            _ => return Err(mismatched(op, &l, &r)),
        },
        BinOp::In => Val::Bool(match (&l, &r) {
            (_, Val::Array(items)) => items.iter().any(|i| equal(&l, i)),
            (Val::Str(k), Val::Map(m)) => m.contains_key(k),
            (Val::Str(k), Val::StrMap(m)) => m.contains_key(k),
            (Val::Str(k), Val::Struct(s)) => s.field(k).is_some(),
            (_, Val::Nil) => false,
            _ => return Err(mismatched(op, &l, &r)),
        }),
        BinOp::Contains => {
            let (a, b) = strings(&l, &r)?;
            Val::Bool(a.contains(&b))
        }
        BinOp::StartsWith => {
            let (a, b) = strings(&l, &r)?;
            Val::Bool(a.starts_with(&b))
        }
        BinOp::EndsWith => {
            let (a, b) = strings(&l, &r)?;
            Val::Bool(a.ends_with(&b))
        }
        BinOp::Matches => {
            let (a, b) = strings(&l, &r)?;
            let re =
                regex::Regex::new(&b).map_err(|e| format!("invalid regular expression: {e}"))?;
            Val::Bool(re.is_match(&a))
        }
        // Handled with short-circuiting by the evaluator.
        BinOp::And | BinOp::Or | BinOp::Coalesce => {
            return Err(format!("internal: {} evaluated eagerly", op.symbol()));
        }
    })
}

/// A value's member or element, as expr's `runtime.Fetch` does it. The second value explains
/// a nil result, for the error that fetching from it next would give.
fn fetch(
    from: Val,
    key: &Val,
    desc: &str,
    why_nil: Option<String>,
) -> Result<(Val, Option<String>), String> {
    let key_text = match key {
        Val::Str(s) => s.clone(),
        other => other.go_display(),
    };
    match (from, key) {
        (Val::Nil, _) => {
            let why = why_nil.unwrap_or_else(|| format!("{desc} is nil"));
            Err(format!("{why}: cannot fetch {key_text} from nil"))
        }
        (Val::Map(mut m), Val::Str(k)) => match m.remove(k) {
            Some(v) => Ok((v, None)),
            None => {
                let known: Vec<String> = m.keys().take(10).map(|k| format!("{k:?}")).collect();
                let has = if known.is_empty() {
                    " (it is empty)".to_string()
                } else {
                    let more = if m.len() > known.len() { ", …" } else { "" };
                    format!(" (it has {}{more})", known.join(", "))
                };
                Ok((Val::Nil, Some(format!("{desc} has no key {k:?}{has}"))))
            }
        },
        (Val::StrMap(mut m), Val::Str(k)) => Ok((Val::Str(m.remove(k).unwrap_or_default()), None)),
        (Val::Struct(s), Val::Str(k)) => match s.field(k) {
            Some(v) => Ok((v.clone(), None)),
            None => Err(format!(
                "type {} has no field {k} (fields: {})",
                s.type_name,
                s.field_names().join(", ")
            )),
        },
        (Val::Array(mut items), Val::Int(_) | Val::Float(_)) => {
            let len = items.len();
            let i = index(key, len)
                .ok_or_else(|| format!("index {key_text} out of range ({desc} has {len} items)"))?;
            Ok((items.swap_remove(i), None))
        }
        (Val::Str(s), Val::Int(_) | Val::Float(_)) => {
            let len = s.len();
            let i = index(key, len)
                .ok_or_else(|| format!("index {key_text} out of range ({desc} has {len} bytes)"))?;
            // Go indexes strings by byte.
            Ok((Val::Int(i64::from(s.as_bytes()[i])), None))
        }
        (Val::Map(_) | Val::StrMap(_) | Val::Struct(_), k) => Err(format!(
            "cannot use {} as a key of a {}",
            k.type_name(),
            "map"
        )),
        (from, _) => Err(format!(
            "cannot fetch {key_text} from {} ({desc})",
            from.describe()
        )),
    }
}

/// A Go index into `len` items, counting negatives from the end.
fn index(key: &Val, len: usize) -> Option<usize> {
    let i = match key {
        Val::Int(i) => *i,
        Val::Float(f) => *f as i64,
        _ => return None,
    };
    let i = if i < 0 { i + len as i64 } else { i };
    usize::try_from(i).ok().filter(|i| *i < len)
}

/// expr's `runtime.Slice`: out-of-range bounds are clamped, not errors.
fn slice(from: Val, lo: Option<Val>, hi: Option<Val>, desc: &str) -> Result<Val, String> {
    let len = match &from {
        Val::Array(a) => a.len(),
        Val::Str(s) => s.len(),
        other => return Err(format!("cannot slice {} ({desc})", other.describe())),
    } as i64;
    let bound = |v: Option<Val>, default: i64| -> Result<i64, String> {
        let n = match v {
            None => default,
            Some(Val::Int(i)) => i,
            Some(Val::Float(f)) => f as i64,
            Some(other) => return Err(format!("invalid slice index {}", other.describe())),
        };
        let n = if n < 0 { n + len } else { n };
        Ok(n.clamp(0, len))
    };
    let b = bound(hi, len)?;
    let a = bound(lo, 0)?.min(b);
    let (a, b) = (a as usize, b as usize);
    Ok(match from {
        Val::Array(items) => Val::Array(items[a..b].to_vec()),
        Val::Str(s) => Val::Str(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned()),
        _ => Val::Nil,
    })
}
