//! expr-lang's predicate builtins (`map`, `filter`, `all`, `reduce`, `sortBy`, …): the
//! predicate runs once per element with `#` (and `#index`, `#acc`) bound to it, as in expr's
//! compiler, which turns each into a loop over the collection.

use std::collections::BTreeMap;

use super::eval::{Evaluator, Frame, add, less};
use super::parser::{Expr, SpanError};
use super::value::Val;

type R<T> = Result<T, SpanError>;

impl Evaluator<'_> {
    /// Calls predicate builtin `name`; `args[1]` is the predicate whose body is `body`.
    pub(super) fn predicate_call(
        &self,
        name: &str,
        args: &[Expr],
        body: &Expr,
        at: usize,
    ) -> R<(Val, Option<String>)> {
        let err = |m: String| SpanError::new(at, format!("{name}: {m}"));
        let items = match self.eval(&args[0])? {
            Val::Array(items) => items,
            other => {
                return Err(err(format!(
                    "cannot iterate over {} ({})",
                    other.describe(),
                    self.snippet(&args[0])
                )));
            }
        };
        let run = |item: &Val, index: usize, acc: Option<Val>| -> R<Val> {
            let frame = Frame::Item {
                item: item.clone(),
                index,
                acc,
            };
            self.with_frame(frame, || self.eval(body))
        };
        let test = |item: &Val, index: usize| -> R<bool> {
            match run(item, index, None)? {
                Val::Bool(b) => Ok(b),
                other => Err(SpanError::new(
                    body.start,
                    format!(
                        "{name}: predicate should return boolean, got {}",
                        other.describe()
                    ),
                )),
            }
        };
        let v = match name {
            "all" | "any" | "none" | "one" | "count" => {
                let mut n = 0usize;
                for (i, item) in items.iter().enumerate() {
                    let b = test(item, i)?;
                    match (name, b) {
                        ("all", false) => return Ok((Val::Bool(false), None)),
                        ("any", true) => return Ok((Val::Bool(true), None)),
                        ("none", true) => return Ok((Val::Bool(false), None)),
                        _ => {}
                    }
                    n += usize::from(b);
                }
                match name {
                    "all" | "none" => Val::Bool(true),
                    "any" => Val::Bool(false),
                    "one" => Val::Bool(n == 1),
                    _ => Val::Int(n as i64),
                }
            }
            "filter" => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if test(item, i)? {
                        out.push(item.clone());
                    }
                }
                Val::Array(out)
            }
            "map" => Val::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| run(item, i, None))
                    .collect::<R<_>>()?,
            ),
            "sum" => {
                let mut total = Val::Int(0);
                for (i, item) in items.iter().enumerate() {
                    let v = run(item, i, None)?;
                    total = add(total, v).map_err(err)?;
                }
                total
            }
            "find" | "findIndex" => {
                let mut found = None;
                for (i, item) in items.iter().enumerate() {
                    if test(item, i)? {
                        found = Some(i);
                        break;
                    }
                }
                found_result(name, &items, found)
            }
            "findLast" | "findLastIndex" => {
                let mut found = None;
                for (i, item) in items.iter().enumerate().rev() {
                    if test(item, i)? {
                        found = Some(i);
                        break;
                    }
                }
                found_result(name, &items, found)
            }
            "groupBy" => {
                let mut groups: BTreeMap<String, Val> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    let key = match run(item, i, None)? {
                        Val::Str(s) => s,
                        other => other.go_display(),
                    };
                    match groups.entry(key).or_insert_with(|| Val::Array(Vec::new())) {
                        Val::Array(group) => group.push(item.clone()),
                        _ => unreachable!("groups only hold arrays"),
                    }
                }
                Val::Map(groups)
            }
            "sortBy" => {
                let desc = match args.get(2) {
                    None => false,
                    Some(e) => match self.eval(e)? {
                        Val::Str(s) if s == "asc" => false,
                        Val::Str(s) if s == "desc" => true,
                        other => {
                            return Err(err(format!(
                                "invalid order {}, expected asc or desc",
                                other.go_display()
                            )));
                        }
                    },
                };
                let mut keyed = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Ok((run(item, i, None)?, item.clone())))
                    .collect::<R<Vec<_>>>()?;
                sort_values(&mut keyed, desc).map_err(err)?;
                Val::Array(keyed.into_iter().map(|(_, v)| v).collect())
            }
            "reduce" => {
                let (mut acc, skip) = match args.get(2) {
                    Some(init) => (self.eval(init)?, 0),
                    None => match items.first() {
                        Some(first) => (first.clone(), 1),
                        None => {
                            return Err(err(
                                "reduce of empty array with no initial value".to_string()
                            ));
                        }
                    },
                };
                for (i, item) in items.iter().enumerate().skip(skip) {
                    acc = run(item, i, Some(acc))?;
                }
                acc
            }
            other => return Err(err(format!("{other} does not take a predicate"))),
        };
        Ok((v, None))
    }

    fn snippet(&self, e: &Expr) -> &str {
        self.src.get(e.start..e.end).unwrap_or("").trim()
    }
}

fn found_result(name: &str, items: &[Val], found: Option<usize>) -> Val {
    if name.ends_with("Index") {
        Val::Int(found.map_or(-1, |i| i as i64))
    } else {
        found.map_or(Val::Nil, |i| items[i].clone())
    }
}

/// A stable sort on the first of each pair with expr's `runtime.Less`.
pub(super) fn sort_values(pairs: &mut [(Val, Val)], desc: bool) -> Result<(), String> {
    let mut failure = None;
    pairs.sort_by(|(a, _), (b, _)| {
        let (a, b) = if desc { (b, a) } else { (a, b) };
        match (less(a, b), less(b, a)) {
            (Ok(true), _) => std::cmp::Ordering::Less,
            (Ok(false), Ok(true)) => std::cmp::Ordering::Greater,
            (Ok(false), Ok(false)) => std::cmp::Ordering::Equal,
            (Err(e), _) | (_, Err(e)) => {
                failure.get_or_insert(e);
                std::cmp::Ordering::Equal
            }
        }
    });
    failure.map_or(Ok(()), Err)
}
