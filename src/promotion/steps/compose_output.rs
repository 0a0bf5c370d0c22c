//! compose-output: publishes its config, a map of values, as the step's outputs (inside a
//! PromotionTask also under the task's alias, so steps after the task can read them).

use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::Step;
use super::toolkit::{StepError, StepOutcome};

pub struct ComposeOutput;

impl Step for ComposeOutput {
    const NAME: &'static str = "compose-output";
    const OUTPUTS_TO_TASK: bool = true;
    type Config = Map<String, Value>;

    /// Any map is valid; the message is Kargo's rather than a field path.
    fn parse(config: Value) -> Result<Self::Config, StepError> {
        match config {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            _ => Err(StepError::Failed("config must be a map of outputs".into())),
        }
    }

    async fn run(cfg: Self::Config, _env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::succeeded(cfg))
    }
}
