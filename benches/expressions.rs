//! The cost of evaluating a typical step config's `${{ }}` expressions, with every expression
//! parsed on each evaluation (as before the parse cache) and with the parse cache warm (what a
//! controller sees after the first reconcile). Pure computation, no services.
//!
//!   cargo bench --bench expressions

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use haul::api::{FreightOrigin, GitCommit, Image};
use haul::expressions::{
    Env, Functions, PromotionContext, TargetFreight, clear_parse_cache, evaluate_bool,
    evaluate_template,
};
use serde_json::{Value, json};

/// A Freight with one image and one commit.
struct Freight;

impl Functions for Freight {
    fn image_from(
        &self,
        repo_url: &str,
        _origin: Option<&FreightOrigin>,
    ) -> Result<Option<Image>, String> {
        Ok(Some(Image {
            repo_url: Some(repo_url.to_string()),
            tag: Some("1.27.3".to_string()),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            annotations: BTreeMap::new(),
            subscription_name: None,
        }))
    }

    fn commit_from(
        &self,
        repo_url: &str,
        _origin: Option<&FreightOrigin>,
    ) -> Result<Option<GitCommit>, String> {
        Ok(Some(GitCommit {
            repo_url: Some(repo_url.to_string()),
            id: Some("0123456789abcdef0123456789abcdef01234567".to_string()),
            ..GitCommit::default()
        }))
    }
}

/// The config of Kargo's quickstart pipeline's steps, merged: clone, update an image, commit
/// and push, and update an Argo CD Application.
fn step_config() -> Value {
    json!({
        "repoURL": "${{ vars.gitopsRepo }}",
        "checkout": [
            {"branch": "main", "path": "${{ vars.srcPath }}"},
            {"branch": "stage/${{ ctx.stage }}", "create": true, "path": "${{ vars.outPath }}"},
        ],
        "path": "${{ vars.srcPath }}/stages/${{ ctx.stage }}",
        "images": [{
            "image": "${{ vars.imageRepo }}",
            "tag": "${{ imageFrom(vars.imageRepo).Tag }}",
            "digest": "${{ imageFrom(vars.imageRepo).Digest }}",
        }],
        "message": "${{ outputs['update-image'].commitMessage }}",
        "targetBranch": "stage/${{ ctx.stage }}",
        "apps": [{
            "name": "kargo-demo-${{ ctx.stage }}",
            "sources": [{
                "repoURL": "${{ vars.gitopsRepo }}",
                "desiredRevision": "${{ outputs.commit.commit }}",
            }],
        }],
        "replicas": "${{ vars.replicas * 2 }}",
        "labels": "${{ {'app': 'demo', 'stage': ctx.stage, 'short': commitFrom(vars.gitopsRepo).ID[0:7]} }}",
    })
}

fn env() -> Env {
    let ctx = PromotionContext {
        project: "kargo-demo".to_string(),
        stage: "test".to_string(),
        promotion: "test.01j2.abc".to_string(),
        target_freight: TargetFreight {
            name: "abc123".to_string(),
            alias: "frozen-tauntaun".to_string(),
            origin: FreightOrigin::warehouse("kargo-demo"),
        },
        ..PromotionContext::default()
    };
    let Value::Object(vars) = json!({
        "gitopsRepo": "https://github.com/example/kargo-demo.git",
        "imageRepo": "public.ecr.aws/nginx/nginx",
        "srcPath": "./src",
        "outPath": "./out",
        "replicas": 2,
    }) else {
        unreachable!("a JSON object literal")
    };
    let Value::Object(outputs) = json!({
        "update-image": {"commitMessage": "Updated ./src/stages/test to use new image(s)"},
        "commit": {"commit": "0123456789abcdef0123456789abcdef01234567"},
    }) else {
        unreachable!("a JSON object literal")
    };
    Env::for_promotion(&ctx)
        .with_vars(vars)
        .with_outputs(outputs)
}

/// Mean time per call of `f`, over enough calls to run for about `budget`.
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n: u32 = 0;
    while start.elapsed() < budget && n < 1_000_000 {
        f();
        n += 1;
    }
    start.elapsed() / n.max(1)
}

/// Rounds of each measurement, interleaved.
const ROUNDS: usize = 11;

fn main() {
    let config = step_config();
    let env = env();
    let condition = "${{ success() && imageFrom(vars.imageRepo).Tag != '' }}";
    let budget = Duration::from_millis(300);
    let rendered = evaluate_template(&config, &env, &Freight).expect("config evaluates");
    assert_eq!(rendered["images"][0]["tag"], "1.27.3");
    assert_eq!(rendered["replicas"], 4);

    // Interleaved rounds, medians: machine noise hits both sides alike.
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        before.push(measure(budget, || {
            clear_parse_cache();
            let _ = evaluate_template(&config, &env, &Freight);
            let _ = evaluate_bool(condition, &env, &Freight);
        }));
        after.push(measure(budget, || {
            let _ = evaluate_template(&config, &env, &Freight);
            let _ = evaluate_bool(condition, &env, &Freight);
        }));
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (parsed_each_time, cached) = (median(before), median(after));
    println!(
        "typical step config (16 expressions) + `if` condition, per evaluation (median of {ROUNDS} rounds):"
    );
    println!(
        "  parsed on every evaluation: {:>8.1} µs",
        parsed_each_time.as_secs_f64() * 1e6
    );
    println!(
        "  parse cache warm:           {:>8.1} µs",
        cached.as_secs_f64() * 1e6
    );
}
