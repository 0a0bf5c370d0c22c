//! expr-lang's own test tables, run against haul's evaluator: `tests/conformance/expr/*.json`
//! are transcribed from expr-lang v1.17.8 (the version Kargo pins). Every case must pass or be
//! listed in [`KNOWN`] with the reason; a listed case that starts passing fails the test, so
//! the list stays true.

use std::collections::BTreeMap;

use serde_json::Value;

use super::NoFunctions;
use super::template::eval_expression;
use super::value::Val;

const GO_ENV: &str = "calls a Go function or method of the test's Go environment (mock.Env), which has no counterpart in Kargo's environment";
const MAP_KEYS: &str = "haul's maps have string keys: groupBy keys become their text (the group is at ['0'], ['true'], ['<nil>'])";

/// Cases haul answers differently, and why.
const KNOWN: &[(&str, &str)] = &[
    ("groupBy(1..9, # % 2)[0]", MAP_KEYS),
    ("groupBy(1..3, # > 1)[true]", MAP_KEYS),
    ("groupBy(1..3, # > 1 ? nil : \"\")[nil]", MAP_KEYS),
    ("Add(10, 5) + GetInt()", GO_ENV),
    ("Foo.Method().Baz", GO_ENV),
    ("Foo.MethodWithArgs(\"prefix \")", GO_ENV),
    ("Variadic(6, 1, 2, 3)", GO_ENV),
    ("Variadic(0)", GO_ENV),
    (
        "let a = 3;\n\t\t\tlet b = 2;\n\t\t\tif a>b {let c = Add(a, b); c+1} else {Add(10, b)}\n\t\t\t",
        GO_ENV,
    ),
    ("let a = 1; Add(2, 2); let b = 2; a + b", GO_ENV),
];

struct Outcome {
    passed: usize,
    known: usize,
    error_messages_matching: usize,
    error_cases: usize,
    failures: Vec<String>,
    stale_known: Vec<String>,
}

fn run(file: &str, text: &str) -> Outcome {
    let doc: Value = serde_json::from_str(text).expect("conformance file is JSON");
    assert_eq!(doc["version"], "v1.17.8", "{file}: upstream version");
    let roots: BTreeMap<String, Val> = doc["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), Val::from_json(v)))
        .chain(go_times())
        .collect();
    let mut out = Outcome {
        passed: 0,
        known: 0,
        error_messages_matching: 0,
        error_cases: 0,
        failures: Vec::new(),
        stale_known: Vec::new(),
    };
    for case in doc["cases"].as_array().expect("cases") {
        let code = case["code"].as_str().expect("code");
        let got = eval_expression(code, code, &roots, &NoFunctions);
        let problem = if let Some(fragment) = case.get("error").and_then(Value::as_str) {
            out.error_cases += 1;
            match &got {
                Err(e) => {
                    if e.message.contains(without_position(fragment)) {
                        out.error_messages_matching += 1;
                    }
                    None
                }
                Ok(v) => Some(format!("wanted an error ({fragment}), got {v:?}")),
            }
        } else if let Some(ns) = case.get("want_duration_ns").and_then(Value::as_i64) {
            // A Go time.Duration, which has no JSON form of its own.
            match &got {
                Ok(Val::Duration(d)) if *d == ns => None,
                Ok(v) => Some(format!("wanted a duration of {ns}ns, got {v:?}")),
                Err(e) => Some(format!("wanted a duration of {ns}ns, got error: {e}")),
            }
        } else if let Some(go) = case.get("want_go").and_then(Value::as_str) {
            match (&got, go_want(go)) {
                (Ok(v), Some(want)) if want.contains(v) => None,
                (Ok(v), Some(want)) => Some(format!("wanted {go} ({want:?}), got {v:?}")),
                (Err(e), _) => Some(format!("wanted {go}, got error: {e}")),
                (Ok(_), None) => Some(format!(
                    "wants the Go value {go}, which haul cannot produce"
                )),
            }
        } else {
            let want = Val::from_json(&case["want"]);
            match &got {
                Ok(v) if *v == want => None,
                Ok(v) => Some(format!("wanted {want:?}, got {v:?}")),
                Err(e) => Some(format!("wanted {want:?}, got error: {e}")),
            }
        };
        let known = KNOWN.iter().any(|(c, _)| *c == code);
        match (problem, known) {
            (None, false) => out.passed += 1,
            (None, true) => out.stale_known.push(code.to_string()),
            (Some(_), true) => out.known += 1,
            (Some(p), false) => out.failures.push(format!("{code:?}: {p}")),
        }
    }
    out
}

/// The time values of expr-lang's test environment (expr_test.go): `Time` is
/// 2017-10-23 18:30 UTC, `Duration` one day, `TimePlusDay` their sum. The JSON env has no time.
fn go_times() -> Vec<(String, Val)> {
    let time = jiff::civil::datetime(2017, 10, 23, 18, 30, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a valid date");
    let day = 24 * 3600 * 1_000_000_000;
    let plus_day = time
        .checked_add(jiff::SignedDuration::from_nanos(day))
        .expect("in range");
    vec![
        ("Time".to_string(), Val::Time(Box::new(time))),
        ("TimePlusDay".to_string(), Val::Time(Box::new(plus_day))),
        ("Duration".to_string(), Val::Duration(day)),
    ]
}

/// The values a `want_go` stands for: `date` (the env's Time), `time.Date(...)` in UTC, or
/// `time.Now().Format(layout)` (now and a minute before, in case a minute turned meanwhile).
fn go_want(go: &str) -> Option<Vec<Val>> {
    if go == "date" {
        return Some(vec![go_times().swap_remove(0).1]);
    }
    if let Some(layout) = go
        .strip_prefix("time.Now().Format(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        let now = jiff::Zoned::now();
        let before = now
            .checked_sub(jiff::SignedDuration::from_secs(60))
            .expect("in range");
        return Some(
            [before, now]
                .iter()
                .map(|t| Val::Str(super::go_layout::format(t, layout).expect("layout")))
                .collect(),
        );
    }
    let args = go.strip_prefix("time.Date(")?.strip_suffix(", time.UTC)")?;
    let n: Vec<i64> = args
        .split(", ")
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [y, mo, d, h, mi, s, ns] = n[..] else {
        return None;
    };
    let t = jiff::civil::datetime(
        y as i16, mo as i8, d as i8, h as i8, mi as i8, s as i8, ns as i32,
    )
    .to_zoned(jiff::tz::TimeZone::UTC)
    .ok()?;
    Some(vec![Val::Time(Box::new(t))])
}

/// expr-lang's message without its trailing ` (line:column)`; haul reports the position apart.
fn without_position(message: &str) -> &str {
    let Some(open) = message.rfind(" (") else {
        return message;
    };
    let inner = &message[open + 2..];
    let is_position = inner.strip_suffix(')').is_some_and(|p| {
        p.split_once(':').is_some_and(|(l, c)| {
            [l, c]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    });
    if is_position {
        message[..open].trim_end()
    } else {
        message
    }
}

fn check(file: &str, text: &str) {
    let o = run(file, text);
    eprintln!(
        "{file}: {} passed, {} known differences, {} failing; {} of {} error cases also match expr-lang's message",
        o.passed,
        o.known,
        o.failures.len(),
        o.error_messages_matching,
        o.error_cases
    );
    assert!(
        o.failures.is_empty(),
        "{file}: {} cases fail:\n{}",
        o.failures.len(),
        o.failures.join("\n")
    );
    assert!(
        o.stale_known.is_empty(),
        "{file}: listed as known differences but now pass: {:?}",
        o.stale_known
    );
}

#[test]
fn expr_lang_language_table() {
    check(
        "language.json",
        include_str!("../../tests/conformance/expr/language.json"),
    );
}

#[test]
fn expr_lang_builtin_table() {
    check(
        "builtin.json",
        include_str!("../../tests/conformance/expr/builtin.json"),
    );
}

#[test]
fn expr_lang_builtin_reverse_table() {
    check(
        "builtin_reverse.json",
        include_str!("../../tests/conformance/expr/builtin_reverse.json"),
    );
}

#[test]
fn expr_lang_builtin_sort_table() {
    check(
        "builtin_sort.json",
        include_str!("../../tests/conformance/expr/builtin_sort.json"),
    );
}

#[test]
fn expr_lang_builtin_bitops_table() {
    check(
        "builtin_bitops.json",
        include_str!("../../tests/conformance/expr/builtin_bitops.json"),
    );
}
