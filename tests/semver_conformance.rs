//! Masterminds/semver v3.5.0's own test tables (the version Kargo pins), run against haul's
//! constraint and version functions — the ones discovery uses. The tables are transcribed as
//! data in `tests/conformance/semver/` (see the `_comment` there and `extract.py`, which
//! regenerates them from the Go module). Every row passes, or its table or row is listed below as
//! a known difference with the reason.

use std::cmp::Ordering;

use haul::discovery::semver_constraint::rewrite_range;
use haul::discovery::semver_version::{
    VersionError, new_version, strict_new_version, validate_metadata, validate_prerelease,
};
use haul::discovery::{Constraint, cmp_precedence};
use haul::expressions::{Env, NoFunctions, evaluate_expression};
use serde_json::Value;

const VERSION_TABLES: &str = include_str!("conformance/semver/version.json");
const CONSTRAINT_TABLES: &str = include_str!("conformance/semver/constraints.json");

/// Whole tables that exercise what haul does not have, with the reason.
const KNOWN_TABLES: &[(&str, &str)] = &[
    (
        "TestNewVersion#2",
        "runs with the Go global CoerceNewVersion=false, which Kargo never sets",
    ),
    (
        "TestIsX",
        "isX: private Go helper; its effect is covered by the Check tables",
    ),
    (
        "TestConstraintsValidateIncludePrerelease#2",
        "Validate's reason strings: Kargo only uses Check, and haul reports no per-version reasons",
    ),
    (
        "TestConstraintsValidate#2",
        "Validate's reason strings: Kargo only uses Check, and haul reports no per-version reasons",
    ),
];

/// Rows that cannot apply:
/// - TestEqual's rows comparing a nil *Version, which has no counterpart in Rust;
/// - TestConstraintCheck's rows with an empty constraint: that table calls the private
///   `parseConstraint`, which reads `""` as `*`, while `NewConstraint` (what Kargo calls, and
///   what `Constraint::parse` is) refuses `""`. Kargo and haul both treat an empty `constraint`
///   field as no constraint at all.
fn known_row(table: &str, row: &[Value]) -> bool {
    (table == "TestEqual" && row.iter().any(Value::is_null))
        || (table == "TestConstraintCheck" && row[0].as_str() == Some(""))
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn version(v: &Value) -> semver::Version {
    new_version(s(v)).unwrap_or_else(|e| panic!("table version {v} does not parse: {e}"))
}

fn constraint(v: &Value) -> Result<Constraint, String> {
    Constraint::parse(s(v)).map_err(|e| e.to_string())
}

fn go_error(name: &Value) -> Option<VersionError> {
    match name {
        Value::Null => None,
        Value::Object(o) => Some(match o.get("ident").and_then(Value::as_str) {
            Some("ErrSegmentStartsZero") => VersionError::SegmentStartsZero,
            Some("ErrInvalidPrerelease") => VersionError::InvalidPrerelease,
            Some("ErrInvalidMetadata") => VersionError::InvalidMetadata,
            other => panic!("unknown Go error {other:?}"),
        }),
        other => panic!("unexpected error column {other}"),
    }
}

fn relation(table: &str, ord: Ordering) -> bool {
    match table {
        "TestLessThan" => ord.is_lt(),
        "TestLessThanEqual" => ord.is_le(),
        "TestGreaterThan" => ord.is_gt(),
        "TestGreaterThanEqual" => ord.is_ge(),
        "TestEqual" => ord.is_eq(),
        _ => unreachable!("{table}"),
    }
}

/// Evaluates an expression as a step config's would be.
fn expr(e: &str) -> Result<Value, String> {
    evaluate_expression(e, &Env::default(), &NoFunctions).map_err(|e| e.to_string())
}

/// Runs one row; `Err` describes the mismatch.
fn run_row(table: &str, row: &[Value]) -> Result<(), String> {
    let mismatch = |got: String| Err(format!("{table} {row:?}: got {got}"));
    match table {
        "TestStrictNewVersion" | "TestNewVersion" => {
            let got = if table == "TestNewVersion" {
                new_version(s(&row[0]))
            } else {
                strict_new_version(s(&row[0]))
            };
            if got.is_err() != row[1].as_bool().unwrap_or_default() {
                return mismatch(format!("{got:?}"));
            }
        }
        "TestCoerceString" => {
            let got = version(&row[0]).to_string();
            if got != s(&row[1]) {
                return mismatch(got);
            }
        }
        "TestCompare" => {
            let got = cmp_precedence(&version(&row[0]), &version(&row[1])) as i64;
            if Some(got) != row[2].as_i64() {
                return mismatch(got.to_string());
            }
        }
        "TestLessThan"
        | "TestLessThanEqual"
        | "TestGreaterThan"
        | "TestGreaterThanEqual"
        | "TestEqual" => {
            let got = relation(table, cmp_precedence(&version(&row[0]), &version(&row[1])));
            if Some(got) != row[2].as_bool() {
                return mismatch(got.to_string());
            }
        }
        "TestValidatePrerelease" | "TestValidateMetadata" => {
            let got = if table == "TestValidatePrerelease" {
                validate_prerelease(s(&row[0]))
            } else {
                validate_metadata(s(&row[0]))
            };
            if got.clone().err() != go_error(&row[1]) {
                return mismatch(format!("{:?}", got));
            }
        }
        "TestParseConstraint" => {
            // Go checks parseConstraint's operator function and zeroed version, which are
            // private here; what is observable is that it parses as one comparison.
            let got = constraint(&row[0]).map(|c| c.shape());
            let want_err = row[3].as_bool().unwrap_or_default();
            match got {
                Err(e) if !want_err => return mismatch(e),
                Ok(shape) if want_err || shape != [1] => return mismatch(format!("{shape:?}")),
                _ => {}
            }
        }
        "TestNewConstraint" => {
            let want_err = row[3].as_bool().unwrap_or_default();
            match constraint(&row[0]) {
                Err(e) if !want_err => return mismatch(e),
                Ok(c) if want_err => return mismatch(format!("{:?}", c.shape())),
                Ok(c) => {
                    let shape = c.shape();
                    let want = (row[1].as_u64(), row[2].as_u64());
                    let got = (Some(shape.len() as u64), shape.first().map(|n| *n as u64));
                    if got != want {
                        return mismatch(format!("{shape:?}"));
                    }
                }
                Err(_) => {}
            }
        }
        // Validate's bool is Check's (same per-operator functions); Kargo calls Check.
        "TestConstraintCheck"
        | "TestConstraintsCheck"
        | "TestConstraintsValidate"
        | "TestConstraintsCheckIncludePrerelease"
        | "TestConstraintsValidateIncludePrerelease" => {
            let c = match constraint(&row[0]) {
                Ok(c) => c,
                Err(e) => return mismatch(e),
            };
            let got = if table.contains("IncludePrerelease") {
                c.matches_including_prereleases(&version(&row[1]))
            } else {
                c.matches(&version(&row[1]))
            };
            if Some(got) != row[2].as_bool() {
                return mismatch(got.to_string());
            }
        }
        "TestRewriteRange" => {
            let got = rewrite_range(s(&row[0]));
            if got != s(&row[1]) {
                return mismatch(format!("{got:?}"));
            }
        }
        "TestConstraintString" | "TestTextMarshalConstraints" | "TestTextUnmarshalConstraints" => {
            let c = match constraint(&row[0]) {
                Ok(c) => c,
                Err(e) => return mismatch(e),
            };
            let got = c.canonical();
            if got != s(&row[1]) {
                return mismatch(format!("{got:?}"));
            }
            // TestConstraintString also re-parses the canonical form.
            if let Err(e) = Constraint::parse(&got) {
                return mismatch(e.to_string());
            }
        }
        // The Go API behind Kargo's `semverParse()`, called as expressions call it.
        "TestInc" => {
            let how = match s(&row[2]) {
                "patch" => "IncPatch",
                "minor" => "IncMinor",
                _ => "IncMajor",
            };
            let v = format!("semverParse({:?}).{how}()", s(&row[0]));
            let got = (
                expr(&format!("{v}.String()")),
                expr(&format!("{v}.Original()")),
            );
            if got != (Ok(row[1].clone()), Ok(row[3].clone())) {
                return mismatch(format!("{got:?}"));
            }
        }
        "TestSetPrerelease" | "TestSetMetadata" => {
            let (method, part) = if table == "TestSetPrerelease" {
                ("SetPrerelease", "Prerelease")
            } else {
                ("SetMetadata", "Metadata")
            };
            let v = format!("semverParse({:?}).{method}({:?})", s(&row[0]), s(&row[1]));
            let got = (
                expr(&format!("{v}.String()")),
                expr(&format!("{v}.{part}()")),
                expr(&format!("{v}.Original()")),
            );
            let ok = if row[5].is_null() {
                got == (Ok(row[2].clone()), Ok(row[3].clone()), Ok(row[4].clone()))
            } else {
                got.0.is_err()
            };
            if !ok {
                return mismatch(format!("{got:?}"));
            }
        }
        // originalVPrefix is private; what shows it is the `v` an increment keeps.
        "TestOriginalVPrefix" => {
            let got = expr(&format!(
                "semverParse({:?}).IncPatch().Original()",
                s(&row[0])
            ));
            let prefix = s(&row[1]);
            if !got.as_ref().is_ok_and(|o| {
                o.as_str()
                    .is_some_and(|o| o.starts_with(prefix) && !o[prefix.len()..].starts_with('v'))
            }) {
                return mismatch(format!("{got:?}"));
            }
        }
        other => return Err(format!("no runner for table {other}")),
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    cases: usize,
    passed: usize,
    known: usize,
    failures: Vec<String>,
}

fn run_file(json: &str, tally: &mut Tally) {
    let doc: Value = serde_json::from_str(json).expect("conformance JSON");
    let tables = doc["tables"].as_object().expect("tables");
    assert!(!tables.is_empty());
    for (name, table) in tables {
        let rows = table["rows"].as_array().expect("rows");
        let known_table = KNOWN_TABLES.iter().find(|(t, _)| t == name);
        for row in rows {
            let row = row.as_array().expect("row");
            tally.cases += 1;
            if known_table.is_some() || known_row(name, row) {
                tally.known += 1;
                continue;
            }
            match run_row(name, row) {
                Ok(()) => tally.passed += 1,
                Err(e) => tally.failures.push(e),
            }
        }
    }
}

#[test]
fn masterminds_semver_tables() {
    let mut tally = Tally::default();
    run_file(VERSION_TABLES, &mut tally);
    run_file(CONSTRAINT_TABLES, &mut tally);
    println!(
        "Masterminds semver v3.5.0 tables: {} cases, {} passing, {} known differences",
        tally.cases, tally.passed, tally.known
    );
    assert!(
        tally.failures.is_empty(),
        "{} of {} cases differ from Masterminds:\n{}",
        tally.failures.len(),
        tally.cases,
        tally.failures.join("\n")
    );
    assert_eq!(tally.cases, tally.passed + tally.known);
}

/// Masterminds' TestNewVersionTooLong / TestNewConstraintTooLong / TestNewConstraintTooManyGroups,
/// which build their input in code rather than in a table.
#[test]
fn masterminds_length_limits() {
    let long = format!("1.0.0-{}", "a".repeat(256));
    assert_eq!(new_version(&long), Err(VersionError::TooLong));
    assert_eq!(strict_new_version(&long), Err(VersionError::TooLong));
    assert!(Constraint::parse(&">= 1.0.0 || ".repeat(100)).is_err());
    let groups = vec![">= 1.0.0"; 33].join(" || ");
    assert!(groups.len() <= 512);
    assert!(Constraint::parse(&groups).is_err());
    assert!(Constraint::parse(&vec![">= 1.0.0"; 32].join(" || ")).is_ok());
}

/// The wrong answers haul used to give, each checked against Masterminds v3.5.0 by hand.
#[test]
fn former_differences_stay_fixed() {
    let check = |c: &str, v: &str| {
        Constraint::parse(c)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(&new_version(v).unwrap_or_else(|e| panic!("{v}: {e}")))
    };
    assert!(!check("!=4.1.0", "5.1.0-alpha.1"));
    assert!(check(">= 1.0.0 <= 2.0.0-beta", "1.0.1-beta"));
    assert!(new_version("1.2.3-alpha.01").is_err());
    assert!(strict_new_version("1.2.3-alpha.01").is_err());
    assert!(new_version("01.02.03").is_ok());
}

const DIFFERENTIAL: &str = include_str!("conformance/semver/differential.json");

/// Beyond the upstream tables: answers of the real Masterminds v3.5.0 (`differential_gen.go`)
/// for a grid of constraints × versions and for version strings, edge cases included.
#[test]
fn masterminds_differential() {
    let doc: Value = serde_json::from_str(DIFFERENTIAL).expect("differential JSON");
    let mut failures = Vec::new();
    let rows = doc["versions"].as_array().expect("versions");
    for row in rows {
        let input = s(&row[0]);
        let loose = new_version(input).ok().map(|v| v.to_string());
        let strict = strict_new_version(input).ok().map(|v| v.to_string());
        if loose.as_deref() != row[1].as_str() || strict.as_deref() != row[2].as_str() {
            failures.push(format!("{row}: got {loose:?} {strict:?}"));
        }
    }
    let checks = doc["constraints"].as_array().expect("constraints");
    for row in checks {
        // A constraint Masterminds refuses is one row with an empty version and a null check.
        match (row[2].as_bool(), Constraint::parse(s(&row[0]))) {
            (None, Err(_)) => {}
            (None, Ok(c)) => failures.push(format!("{row}: accepted as {}", c.canonical())),
            (Some(_), Err(e)) => failures.push(format!("{row}: {e}")),
            (Some(want), Ok(c)) => {
                if c.matches(&version(&row[1])) != want {
                    failures.push(format!("{row}: got {}", !want));
                }
            }
        }
    }
    println!(
        "Masterminds v3.5.0 differential: {} version strings, {} constraint checks",
        rows.len(),
        checks.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
