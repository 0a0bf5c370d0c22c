//! The `kargo.akuity.io/authorized-stage` annotation (Kargo `AuthorizedStages`): the Stages,
//! as a comma-separated list of `<project>:<stage>`, that may change an Argo CD Application.
//! One parser serves the `argocd-update` step, which refuses anything malformed
//! ([`parse`], [`authorize`]), and the controllers' watches, which only need to know which
//! Stages an Application names ([`listed`]).

use std::fmt;

use super::{Error, app_key};
use crate::api::ANNOTATION_AUTHORIZED_STAGE;
use crate::api::argocd::Application;

/// A Stage of a project, as the annotation names it (`<project>:<stage>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StageRef {
    pub project: String,
    pub stage: String,
}

impl StageRef {
    pub fn new(project: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            stage: stage.into(),
        }
    }
}

impl fmt::Display for StageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.project, self.stage)
    }
}

/// Why an annotation value is not a list of `<project>:<stage>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizedStageError {
    #[error("entry {0:?} is not of the form <project>:<stage>")]
    NotProjectStage(String),
    #[error(
        "entry {0:?} is a glob, and globs are not supported: list each Stage as <project>:<stage>, comma-separated"
    )]
    Glob(String),
    #[error("no <project>:<stage> entry in {0:?}")]
    Empty(String),
}

/// One non-empty, trimmed entry.
fn entry(entry: &str) -> Result<StageRef, AuthorizedStageError> {
    let (project, stage) = match entry.split_once(':') {
        Some((p, s)) if !p.trim().is_empty() && !s.trim().is_empty() => (p.trim(), s.trim()),
        _ => return Err(AuthorizedStageError::NotProjectStage(entry.to_string())),
    };
    if entry.contains('*') {
        return Err(AuthorizedStageError::Glob(entry.to_string()));
    }
    Ok(StageRef::new(project, stage))
}

fn entries(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Parses an annotation value strictly: every entry must be `<project>:<stage>`; globs and
/// malformed entries are errors, and so is a value without any entry.
pub fn parse(value: &str) -> Result<Vec<StageRef>, AuthorizedStageError> {
    let stages = entries(value).map(entry).collect::<Result<Vec<_>, _>>()?;
    if stages.is_empty() {
        return Err(AuthorizedStageError::Empty(value.to_string()));
    }
    Ok(stages)
}

/// The well-formed entries of an annotation value, skipping malformed ones: a watch maps an
/// Application to the Stages it names and has nobody to report an error to.
pub fn listed(value: &str) -> Vec<StageRef> {
    entries(value).filter_map(|e| entry(e).ok()).collect()
}

/// The annotation's value on an Application, if it has one.
pub fn annotation(app: &Application) -> Option<&str> {
    app.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_AUTHORIZED_STAGE))
        .map(String::as_str)
}

/// The Stages an Application's annotation names (none without the annotation).
pub fn listed_on(app: &Application) -> Vec<StageRef> {
    annotation(app).map(listed).unwrap_or_default()
}

/// Succeeds when the Application's annotation lists `stage`; the error says which annotation
/// value is needed.
pub fn authorize(app: &Application, stage: &StageRef) -> Result<(), Error> {
    let key = app_key(app);
    let Some(value) = annotation(app) else {
        return Err(Error::Unauthorized(format!(
            "Application {key} is not authorized for Stage {stage}: add the annotation {ANNOTATION_AUTHORIZED_STAGE}: {stage}"
        )));
    };
    let stages = parse(value).map_err(|e| {
        Error::Unauthorized(format!(
            "Application {key} is not authorized for Stage {stage}: its annotation {ANNOTATION_AUTHORIZED_STAGE}: {value:?} is invalid ({e}); set it to {stage}"
        ))
    })?;
    if stages.contains(stage) {
        Ok(())
    } else {
        Err(Error::Unauthorized(format!(
            "Application {key} is not authorized for Stage {stage}: its annotation {ANNOTATION_AUTHORIZED_STAGE} is {value:?}; add {stage} to it (entries are comma-separated)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &str, st: &str) -> StageRef {
        StageRef::new(p, st)
    }

    #[test]
    fn parse_reads_comma_separated_project_stage_pairs() {
        assert_eq!(parse("p:dev"), Ok(vec![s("p", "dev")]));
        assert_eq!(
            parse(" p : dev ,, q:prod "),
            Ok(vec![s("p", "dev"), s("q", "prod")])
        );
    }

    #[test]
    fn parse_refuses_globs_malformed_entries_and_empty_values() {
        assert_eq!(parse("p:*"), Err(AuthorizedStageError::Glob("p:*".into())));
        assert_eq!(
            parse("p:dev,:x"),
            Err(AuthorizedStageError::NotProjectStage(":x".into()))
        );
        assert_eq!(
            parse("dev"),
            Err(AuthorizedStageError::NotProjectStage("dev".into()))
        );
        assert_eq!(parse(" , "), Err(AuthorizedStageError::Empty(" , ".into())));
        assert!(
            parse("*:dev")
                .unwrap_err()
                .to_string()
                .contains("globs are not supported")
        );
    }

    #[test]
    fn listed_keeps_the_well_formed_entries() {
        assert_eq!(
            listed("p:dev, *:x, junk, q:prod"),
            vec![s("p", "dev"), s("q", "prod")]
        );
        assert!(listed("").is_empty());
    }

    #[test]
    fn listed_on_reads_the_application_annotation() {
        let app: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "a", "namespace": "argocd",
                         "annotations": {"kargo.akuity.io/authorized-stage": "p:dev"}},
            "spec": {"project": "default", "destination": {}}
        }))
        .expect("application");
        assert_eq!(listed_on(&app), vec![s("p", "dev")]);
        let mut bare = app.clone();
        bare.metadata.annotations = None;
        assert!(listed_on(&bare).is_empty());
    }
}
