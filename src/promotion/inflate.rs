//! Turning a Stage's promotion template into the flat list of steps a Promotion runs (Kargo
//! reference §2.5, §2.6): default aliases, PromotionTask / ClusterPromotionTask references
//! expanded with their vars, fixed when the Promotion starts.

use std::collections::BTreeMap;

use crate::api::{
    ExpressionVariable, PromotionStep, PromotionTaskKind, PromotionTaskSpec, PromotionTemplateSpec,
};

/// Separates a task step's alias from the aliases of the steps inside the task.
pub const TASK_SEPARATOR: &str = "::";

/// The tasks a template may reference, keyed by (kind, name).
#[derive(Debug, Default, Clone)]
pub struct Tasks {
    pub tasks: BTreeMap<(TaskKind, String), PromotionTaskSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskKind {
    Namespaced,
    Cluster,
}

impl TaskKind {
    pub fn of(kind: Option<&PromotionTaskKind>) -> Self {
        match kind {
            Some(PromotionTaskKind::ClusterPromotionTask) => TaskKind::Cluster,
            _ => TaskKind::Namespaced,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InflateError {
    #[error("steps[{index}]: exactly one of uses or task must be set")]
    UsesOrTask { index: usize },
    #[error("steps[{index}] ({alias}): {kind} {name:?} does not exist")]
    MissingTask {
        index: usize,
        alias: String,
        kind: &'static str,
        name: String,
    },
    #[error(
        "steps[{index}] ({alias}): task {name:?} needs variable {var:?}, which neither the step nor the promotion sets"
    )]
    MissingVar {
        index: usize,
        alias: String,
        name: String,
        var: String,
    },
    #[error("steps[{index}]: alias {alias:?} is used by more than one step")]
    DuplicateAlias { index: usize, alias: String },
    #[error("steps[{index}]: alias {alias:?} is reserved (step-N and task-N are generated)")]
    ReservedAlias { index: usize, alias: String },
    #[error(
        "steps[{index}] ({alias}): task {name:?} step {inner}: a task may not reference another task"
    )]
    NestedTask {
        index: usize,
        alias: String,
        name: String,
        inner: usize,
    },
    #[error("the promotion template has no steps")]
    NoSteps,
}

fn reserved(alias: &str) -> bool {
    let rest = alias
        .strip_prefix("step-")
        .or_else(|| alias.strip_prefix("task-"));
    rest.is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
}

/// The task references a template makes: (kind, name) pairs, to fetch before inflating.
pub fn task_references(template: &PromotionTemplateSpec) -> Vec<(TaskKind, String)> {
    template
        .steps
        .iter()
        .filter_map(|s| s.task.as_ref())
        .map(|t| (TaskKind::of(t.kind.as_ref()), t.name.clone()))
        .collect()
}

/// Expands the template into runnable steps, every one with `uses` and an alias.
/// Task vars resolve from the referencing step's vars, then the promotion's vars, then the
/// task's defaults; the result is put in front of each inner step's own vars.
pub fn inflate(
    template: &PromotionTemplateSpec,
    promotion_vars: &[ExpressionVariable],
    tasks: &Tasks,
) -> Result<Vec<PromotionStep>, InflateError> {
    if template.steps.is_empty() {
        return Err(InflateError::NoSteps);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, step) in template.steps.iter().enumerate() {
        let n = index + 1;
        if let Some(a) = &step.r#as {
            if reserved(a) {
                return Err(InflateError::ReservedAlias {
                    index,
                    alias: a.clone(),
                });
            }
            if !seen.insert(a.clone()) {
                return Err(InflateError::DuplicateAlias {
                    index,
                    alias: a.clone(),
                });
            }
        }
        match (&step.uses, &step.task) {
            (Some(_), None) => {
                let mut s = step.clone();
                s.r#as = Some(step.r#as.clone().unwrap_or_else(|| format!("step-{n}")));
                out.push(s);
            }
            (None, Some(task_ref)) => {
                let alias = step.r#as.clone().unwrap_or_else(|| format!("task-{n}"));
                let kind = TaskKind::of(task_ref.kind.as_ref());
                let spec = tasks
                    .tasks
                    .get(&(kind, task_ref.name.clone()))
                    .ok_or_else(|| InflateError::MissingTask {
                        index,
                        alias: alias.clone(),
                        kind: match kind {
                            TaskKind::Namespaced => "PromotionTask",
                            TaskKind::Cluster => "ClusterPromotionTask",
                        },
                        name: task_ref.name.clone(),
                    })?;
                let mut task_vars = Vec::new();
                for v in &spec.vars {
                    let value = find_var(&step.vars, &v.name)
                        .or_else(|| find_var(promotion_vars, &v.name))
                        .or_else(|| v.value.clone())
                        .ok_or_else(|| InflateError::MissingVar {
                            index,
                            alias: alias.clone(),
                            name: task_ref.name.clone(),
                            var: v.name.clone(),
                        })?;
                    task_vars.push(ExpressionVariable {
                        name: v.name.clone(),
                        value: Some(value),
                    });
                }
                for (i, inner) in spec.steps.iter().enumerate() {
                    if inner.task.is_some() || inner.uses.is_none() {
                        return Err(InflateError::NestedTask {
                            index,
                            alias: alias.clone(),
                            name: task_ref.name.clone(),
                            inner: i,
                        });
                    }
                    let inner_alias = inner
                        .r#as
                        .clone()
                        .unwrap_or_else(|| format!("step-{}", i + 1));
                    let mut s = inner.clone();
                    s.r#as = Some(format!("{alias}{TASK_SEPARATOR}{inner_alias}"));
                    s.vars = task_vars
                        .iter()
                        .cloned()
                        .chain(inner.vars.iter().cloned())
                        .collect();
                    out.push(s);
                }
            }
            _ => return Err(InflateError::UsesOrTask { index }),
        }
    }
    Ok(out)
}

fn find_var(vars: &[ExpressionVariable], name: &str) -> Option<String> {
    vars.iter()
        .rev()
        .find(|v| v.name == name)
        .and_then(|v| v.value.clone())
}

/// The task a step alias belongs to (`task::step` → `task`), if any.
pub fn task_of(alias: &str) -> Option<&str> {
    alias.split_once(TASK_SEPARATOR).map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PromotionTaskReference;

    fn step(uses: &str, alias: Option<&str>) -> PromotionStep {
        PromotionStep {
            uses: Some(uses.into()),
            r#as: alias.map(str::to_string),
            ..Default::default()
        }
    }

    fn var(name: &str, value: Option<&str>) -> ExpressionVariable {
        ExpressionVariable {
            name: name.into(),
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn default_aliases_count_from_one() {
        let t = PromotionTemplateSpec {
            vars: vec![],
            steps: vec![step("git-clone", None), step("git-commit", Some("commit"))],
        };
        let s = inflate(&t, &[], &Tasks::default()).expect("inflate");
        let aliases: Vec<_> = s
            .iter()
            .map(|s| s.r#as.clone().unwrap_or_default())
            .collect();
        assert_eq!(aliases, ["step-1", "commit"]);
    }

    #[test]
    fn tasks_expand_with_vars_from_step_promotion_and_defaults() {
        let mut tasks = Tasks::default();
        tasks.tasks.insert(
            (TaskKind::Namespaced, "update".into()),
            PromotionTaskSpec {
                vars: vec![
                    var("repo", None),
                    var("branch", Some("main")),
                    var("env", None),
                ],
                steps: vec![step("git-clone", None), step("git-push", Some("push"))],
            },
        );
        let t = PromotionTemplateSpec {
            vars: vec![],
            steps: vec![PromotionStep {
                task: Some(PromotionTaskReference {
                    name: "update".into(),
                    kind: None,
                }),
                vars: vec![var("repo", Some("https://git/x"))],
                ..Default::default()
            }],
        };
        let s = inflate(&t, &[var("env", Some("dev"))], &tasks).expect("inflate");
        assert_eq!(s[0].r#as.as_deref(), Some("task-1::step-1"));
        assert_eq!(s[1].r#as.as_deref(), Some("task-1::push"));
        let vars: Vec<_> = s[0]
            .vars
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            vars,
            [
                ("repo", "https://git/x"),
                ("branch", "main"),
                ("env", "dev")
            ]
        );
        assert_eq!(task_of("task-1::push"), Some("task-1"));

        // A required var nobody sets is an error naming it.
        let t2 = PromotionTemplateSpec {
            vars: vec![],
            steps: vec![PromotionStep {
                task: Some(PromotionTaskReference {
                    name: "update".into(),
                    kind: None,
                }),
                ..Default::default()
            }],
        };
        let e = inflate(&t2, &[], &tasks).expect_err("missing var");
        assert!(e.to_string().contains("\"repo\""), "{e}");
    }

    #[test]
    fn bad_templates_are_refused() {
        let dup = PromotionTemplateSpec {
            vars: vec![],
            steps: vec![step("a", Some("x")), step("b", Some("x"))],
        };
        assert!(matches!(
            inflate(&dup, &[], &Tasks::default()),
            Err(InflateError::DuplicateAlias { .. })
        ));
        let res = PromotionTemplateSpec {
            vars: vec![],
            steps: vec![step("a", Some("step-3"))],
        };
        assert!(matches!(
            inflate(&res, &[], &Tasks::default()),
            Err(InflateError::ReservedAlias { .. })
        ));
        let missing = PromotionTemplateSpec {
            vars: vec![],
            steps: vec![PromotionStep {
                task: Some(PromotionTaskReference {
                    name: "nope".into(),
                    kind: Some(PromotionTaskKind::ClusterPromotionTask),
                }),
                ..Default::default()
            }],
        };
        let e = inflate(&missing, &[], &Tasks::default()).expect_err("missing");
        assert!(
            e.to_string().contains("ClusterPromotionTask \"nope\""),
            "{e}"
        );
        assert_eq!(
            inflate(&PromotionTemplateSpec::default(), &[], &Tasks::default()),
            Err(InflateError::NoSteps)
        );
    }
}
