//! fail: ends the step, and so the Promotion, on purpose (usually under an `if`).

use schemars::JsonSchema;
use serde::Deserialize;

use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    message: Option<String>,
}

/// Kargo's message, and Kargo's status: Errored (its fail step returns an Errored result).
/// Not retried: failing again later would say nothing new.
pub fn run(cfg: Config) -> Result<StepOutcome, StepError> {
    Err(StepError::Errored(
        match cfg.message.filter(|m| !m.is_empty()) {
            Some(m) => format!("failed with message: {m}"),
            None => "failed".to_string(),
        },
    ))
}

step! { pub struct Fail = "fail", Config, |cfg, _env| async { run(cfg) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_with_the_message() {
        let e = run(Config {
            message: Some("chart name mismatch".into()),
        });
        assert_eq!(
            e.map(|_| ()),
            Err(StepError::Errored(
                "failed with message: chart name mismatch".into()
            ))
        );
        assert_eq!(
            run(Config { message: None }).map(|_| ()),
            Err(StepError::Errored("failed".into()))
        );
    }
}
