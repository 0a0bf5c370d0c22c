use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::*;

/// Freight and step data standing in for a promotion.
#[derive(Default)]
struct TestFuncs {
    failed: bool,
}

impl Functions for TestFuncs {
    fn image_from(
        &self,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<Image>, String> {
        match (repo_url, origin.map(|o| o.name.as_str())) {
            ("public.ecr.aws/nginx/nginx", None) => Ok(Some(Image {
                repo_url: Some(repo_url.to_string()),
                tag: Some("1.25.3".to_string()),
                digest: Some("sha256:abc".to_string()),
                annotations: BTreeMap::from([("org.opencontainers.image.version".to_string(), "1.25.3".to_string())]),
                subscription_name: None,
            })),
            ("public.ecr.aws/nginx/nginx", Some("my-warehouse")) => Ok(Some(Image {
                repo_url: Some(repo_url.to_string()),
                tag: Some("1.26.0".to_string()),
                ..Image::default()
            })),
            ("ghcr.io/example/frontend" | "ghcr.io/example/backend", None) => Ok(Some(Image {
                repo_url: Some(repo_url.to_string()),
                tag: Some("v2.0.0".to_string()),
                ..Image::default()
            })),
            ("ambiguous", None) => Err(
                "multiple requested Freight could potentially provide a container image from repository ambiguous: please provide a Freight origin to disambiguate"
                    .to_string(),
            ),
            _ => Ok(None),
        }
    }

    fn commit_from(
        &self,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<GitCommit>, String> {
        if repo_url != "https://github.com/example/repo.git" {
            return Ok(None);
        }
        let id = if origin.is_some() {
            "fedcba9"
        } else {
            "abc1234"
        };
        Ok(Some(GitCommit {
            repo_url: Some(repo_url.to_string()),
            id: Some(id.to_string()),
            branch: Some("main".to_string()),
            message: Some("Fix things".to_string()),
            ..GitCommit::default()
        }))
    }

    fn chart_from(
        &self,
        repo_url: &str,
        name: Option<&str>,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<Chart>, String> {
        let version = match (repo_url, name, origin.is_some()) {
            ("oci://example.com/my-chart", None, false) => "1.0.0",
            ("oci://example.com/my-chart", None, true) => "1.1.0",
            ("https://example.com/charts", Some("my-chart"), false) => "2.0.0",
            ("https://example.com/charts", Some("my-chart"), true) => "2.1.0",
            _ => return Ok(None),
        };
        Ok(Some(Chart {
            repo_url: Some(repo_url.to_string()),
            name: name.map(str::to_string),
            version: Some(version.to_string()),
            subscription_name: None,
        }))
    }

    fn step_status(&self, alias: &str) -> Option<String> {
        match alias {
            "my-step-alias" | "x" => Some("Succeeded".to_string()),
            "broken" => Some("Errored".to_string()),
            _ => None,
        }
    }

    fn any_failed(&self) -> bool {
        self.failed
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        Ok(match name {
            "slack" => BTreeMap::from([("token".to_string(), "xoxb-123".to_string())]),
            _ => BTreeMap::new(),
        })
    }

    fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        Ok(match name {
            "my-config" => BTreeMap::from([(
                "repoURL".to_string(),
                "https://github.com/example/config.git".to_string(),
            )]),
            _ => BTreeMap::new(),
        })
    }

    fn freight_metadata(&self, freight: &str) -> Result<Option<Map<String, Value>>, String> {
        Ok((freight == "abc123").then(|| {
            let Value::Object(m) = json!({"category": "hotfix"}) else {
                return Map::new();
            };
            m
        }))
    }

    fn shared_secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        self.secret(name)
    }

    fn shared_config_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        self.config_map(name)
    }

    fn freight_status(&self, freight: &str) -> Result<Option<Map<String, Value>>, String> {
        Ok((freight == "abc123").then(|| {
            obj(json!({
                "currentlyIn": {"test": {"since": "2025-06-01T09:00:00Z"}},
                "verifiedIn": {"test": {}},
                "approvedFor": {"prod": {"approvedAt": "2025-06-01T10:00:00Z"}},
                "metadata": {"category": "hotfix"},
            }))
        }))
    }

    fn artifact_from(
        &self,
        subscription: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<crate::api::ArtifactReference>, String> {
        Ok(
            (subscription == "my-artifact" && origin.is_none()).then(|| {
                crate::api::ArtifactReference {
                    artifact_type: Some("application/vnd.example.bundle".to_string()),
                    subscription_name: subscription.to_string(),
                    version: "v1.0.0".to_string(),
                    metadata: Some(json!({"url": "https://example.com/b-1.0.0.tgz", "size": 42})),
                }
            }),
        )
    }

    fn stage_metadata(&self, stage: &str) -> Result<Option<Map<String, Value>>, String> {
        Ok((stage == "test").then(|| {
            let Value::Object(m) = json!({"aws-region": "eu-west-1", "config": {"settings": {}}})
            else {
                return Map::new();
            };
            m
        }))
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
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
        actor: "admin".to_string(),
        ..PromotionContext::default()
    };
    Env::for_promotion(&ctx)
        .with_vars(obj(json!({
            "gitopsRepo": "https://github.com/example/kargo-demo.git",
            "gitRepo": "https://github.com/example/repo.git",
            "imageRepo": "public.ecr.aws/nginx/nginx",
            "srcPath": "./src",
            "outPath": "./out",
            "targetBranch": "stage/test",
            "count": 3,
            "half": 2.5,
            "two": 2.0,
            "enabled": true,
            "empty": "",
            "repo": "x",
        })))
        .with_outputs(obj(json!({
            "update-image": {"commitMessage": "Updated ./src/base to use new image(s)"},
            "commit": {"commit": "abc1234"},
            "read-version": {"currentVersion": "1.2.3"},
            "indirect-push": {"branch": "kargo/promotion/test.01j2.abc"},
            "read-config": {"appConfig": {"replicas": 2, "image": {"tag": "1.2.3"}}},
        })))
        .with_task_outputs(obj(json!({
            "x": {"y": "z"},
            "read-version": {"currentVersion": "1.2.3"},
        })))
}

fn eval(template: &str) -> Result<Value, ExpressionError> {
    evaluate_template(
        &Value::String(template.to_string()),
        &env(),
        &TestFuncs::default(),
    )
}

#[test]
fn templates_evaluate_like_kargo() {
    let cases: &[(&str, Value)] = &[
        // The reference pipeline.
        (
            "${{ vars.gitopsRepo }}",
            json!("https://github.com/example/kargo-demo.git"),
        ),
        ("${{ imageFrom(vars.imageRepo).Tag }}", json!("1.25.3")),
        (
            "${{ outputs['update-image'].commitMessage }}",
            json!("Updated ./src/base to use new image(s)"),
        ),
        ("${{ outputs.commit.commit }}", json!("abc1234")),
        ("${{ ctx.stage }}", json!("test")),
        ("${{ task.outputs.x.y }}", json!("z")),
        // Text mixed with expressions.
        ("./env/${{ ctx.stage }}/x", json!("./env/test/x")),
        ("stage/${{ ctx.stage }}", json!("stage/test")),
        (
            "${{ vars.srcPath }}/stages/${{ ctx.stage }}",
            json!("./src/stages/test"),
        ),
        ("example-${{ ctx.stage }}", json!("example-test")),
        ("${{ 'abc' }}def", json!("abcdef")),
        // Coercion applies to the joined text, as in Kargo.
        ("${{ vars.count }}${{ vars.count }}", json!(33)),
        ("${{ 1 }}.${{ 5 }}", json!(1.5)),
        // Operators.
        ("${{ ctx.stage == 'prod' ? 'main' : 'dev' }}", json!("dev")),
        ("${{ vars.count > 2 ? 'many' : 'few' }}", json!("many")),
        ("${{ ctx.stage == 'test' && vars.enabled }}", json!(true)),
        ("${{ ctx.stage != 'test' || !vars.enabled }}", json!(false)),
        ("${{ not (ctx.stage == 'test') or false }}", json!(false)),
        ("${{ 1 == 1 and 2 != 3 }}", json!(true)),
        ("${{ 1 == 1.0 }}", json!(true)),
        ("${{ 'a' == 1 }}", json!(false)),
        ("${{ nil == nil }}", json!(true)),
        ("${{ 'stage-' + ctx.stage }}", json!("stage-test")),
        ("${{ \"dq\" + 'sq' + `raw\\n` }}", json!("dqsqraw\\n")),
        ("${{ 1 + 2 * 3 }}", json!(7)),
        ("${{ (1 + 2) * 3 }}", json!(9)),
        ("${{ 10 / 4 }}", json!(2.5)),
        ("${{ 7 % 3 }}", json!(1)),
        ("${{ 2 ** 3 }}", json!(8)),
        ("${{ -2 ** 2 }}", json!(-4)),
        ("${{ -vars.count }}", json!(-3)),
        ("${{ vars.half * 2 }}", json!(5)),
        ("${{ 'a' in ['a', 'b'] }}", json!(true)),
        ("${{ 'commit' in outputs }}", json!(true)),
        ("${{ 'nope' not in outputs }}", json!(true)),
        ("${{ ctx.stage startsWith 'te' }}", json!(true)),
        ("${{ ctx.stage endsWith 'st' }}", json!(true)),
        ("${{ vars.imageRepo contains 'nginx' }}", json!(true)),
        ("${{ ctx.stage matches '^t.*t$' }}", json!(true)),
        ("${{ 1..3 }}", json!([1, 2, 3])),
        ("${{ vars.imageRepo[0:6] }}", json!("public")),
        ("${{ [1, 2, 3][-1] }}", json!(3)),
        ("${{ nil ?? 'd' }}", json!("d")),
        ("${{ outputs.nope?.x ?? 'fallback' }}", json!("fallback")),
        ("${{ outputs?.['commit']?.commit }}", json!("abc1234")),
        ("${{ vars.missing }}", json!(null)),
        ("${{ true ?: false }}", json!(true)),
        ("${{ ctx.stage | upper() }}", json!("TEST")),
        ("${{ 0x10 + 0755 + 1_000 + 0b11 }}", json!(1774)),
        ("${{ 1 < 2 < 3 }}", json!(true)),
        ("${{ 3 > 2 > 2 }}", json!(false)),
        ("${{ !vars.enabled || ctx.stage == 'test' }}", json!(true)),
        ("${{ {1: 'a', b: 2,} }}", json!({"1": "a", "b": 2})),
        ("${{ (nil ?? 1) + 1 }}", json!(2)),
        ("${{ 1 /* comment */ + 1 }}", json!(2)),
        // Types survive a lone expression; quote() forces a string.
        ("${{ 1 + 1 }}", json!(2)),
        ("${{ quote(42) }}", json!("42")),
        ("${{ 1.5 }}", json!(1.5)),
        ("${{ vars.two }}", json!(2)),
        ("${{ true }}", json!(true)),
        ("${{ quote(true) }}", json!("true")),
        ("${{ quote(null) }}", json!("null")),
        ("${{ quote({ 'foo': 'bar' }) }}", json!("{\"foo\":\"bar\"}")),
        ("${{ quote('foo') }}", json!("foo")),
        ("${{ unsafeQuote('foo') }}", json!("\"foo\"")),
        ("${{ {\"foo\": \"bar\"} }}", json!({"foo": "bar"})),
        ("${{ \"null\" }}", json!(null)),
        ("${{ '42' }}", json!(42)),
        ("${{ 'true' }}", json!(true)),
        // Go's ParseBool reads "t" and "F" as bools.
        ("${{ 't' }}", json!(true)),
        ("${{ ' [1, 2] ' }}", json!([1, 2])),
        ("${{ 1e21 }}", json!(1e21)),
        ("42", json!("42")),
        ("true", json!("true")),
        // A `|` block scalar's trailing newline.
        ("${{ {\"foo\": \"bar\"} }}\n", json!({"foo": "bar"})),
        (
            "${{ quote({\"foo\": \"bar\"}) }}\n",
            json!("{\"foo\":\"bar\"}\n"),
        ),
        ("${{ 42 }}\n", json!(42)),
        ("${{ quote(42) }}\n", json!("42\n")),
        // Alternative delimiters.
        ("${% '{{.domain}}' %}", json!("{{.domain}}")),
        (
            "foo ${{ vars.srcPath }} and ${% 'bar' %}",
            json!("foo ./src and bar"),
        ),
        // Kargo quirks kept on purpose: quote() uses Go's %q, and a result wrapped in quotes
        // as a whole is unwrapped.
        ("${{ quote('say \"hi\"') }}", json!("say \\\"hi\\\"")),
        (
            "${{ quote('a') }} and ${{ quote('b') }}",
            json!("a\" and \"b"),
        ),
        (
            "${{ quote({'a': '<b>'}) }}",
            json!("{\"a\":\"\\u003cb\\u003e\"}"),
        ),
        // Struct results render with JSON tags and read with Go field names.
        (
            "${{ imageFrom(vars.imageRepo) }}",
            json!({
                "repoURL": "public.ecr.aws/nginx/nginx",
                "tag": "1.25.3",
                "digest": "sha256:abc",
                "annotations": {"org.opencontainers.image.version": "1.25.3"},
            }),
        ),
        (
            "${{ imageFrom(vars.imageRepo).Annotations['org.opencontainers.image.version'] }}",
            json!("1.25.3"),
        ),
        (
            "${{ imageFrom(vars.imageRepo).Annotations['missing'] }}",
            json!(""),
        ),
        (
            "${{ imageFrom(vars.imageRepo)['Digest'] }}",
            json!("sha256:abc"),
        ),
        ("${{ 'Tag' in imageFrom(vars.imageRepo) }}", json!(true)),
        ("${{ imageFrom(vars.repo) }}", json!(null)),
        (
            "${{ imageFrom(vars.repo)?.Tag ?? 'latest' }}",
            json!("latest"),
        ),
        (
            "${{ warehouse('w') }}",
            json!({"kind": "Warehouse", "name": "w"}),
        ),
        ("${{ ctx.targetFreight.origin.name }}", json!("kargo-demo")),
        ("${{ ctx.targetFreight.alias }}", json!("frozen-tauntaun")),
        ("${{ ctx.meta.promotion.actor }}", json!("admin")),
        // Built-ins.
        ("${{ len(ctx.stage) }}", json!(4)),
        ("${{ upper(ctx.stage) + lower('X') }}", json!("TESTx")),
        ("${{ split('a,b,c', ',') }}", json!(["a", "b", "c"])),
        ("${{ split('a,b,c', ',', 2) }}", json!(["a", "b,c"])),
        ("${{ join(['a', 'b'], '-') }}", json!("a-b")),
        (
            "${{ replace(vars.imageRepo, '/', '_') }}",
            json!("public.ecr.aws_nginx_nginx"),
        ),
        ("${{ trimPrefix(vars.srcPath, './') }}", json!("src")),
        ("${{ trim('  x  ') }}", json!("x")),
        ("${{ 'x' + string(1000000.0) }}", json!("x1e+06")),
        ("${{ string(1000000.0) }}", json!(1000000)),
        ("${{ string([1, 'a']) }}", json!("[1 a]")),
        ("${{ int('12') + 1 }}", json!(13)),
        ("${{ toJSON({'a': 1}) }}", json!({"a": 1})),
        ("${{ fromJSON('{\"a\": [1]}').a[0] }}", json!(1)),
        ("${{ keys({'b': 1, 'a': 2}) }}", json!(["a", "b"])),
        ("${{ hasPrefix(ctx.stage, 'te') }}", json!(true)),
        ("${{ max(1, 2.5, 2) }}", json!(2.5)),
        ("${{ get(outputs, 'nope') }}", json!(null)),
    ];
    for (template, want) in cases {
        match eval(template) {
            Ok(got) => assert_eq!(&got, want, "{template}"),
            Err(e) => panic!("{template}: {e}"),
        }
    }
}

#[test]
fn examples_from_kargos_expression_docs() {
    let cases: &[(&str, Value)] = &[
        ("${{ \"Hello, world!\" }}", json!("Hello, world!")),
        ("${{ 40 + 2 }}", json!(42)),
        ("${{ quote(40 + 2) }}", json!("42")),
        ("${{ quote(\"string\") }}", json!("string")),
        ("${{ unsafeQuote(40 + 2) }}", json!("42")),
        ("${{ unsafeQuote(\"string\") }}", json!("\"string\"")),
        (
            "${{ configMap('my-config').repoURL }}",
            json!("https://github.com/example/config.git"),
        ),
        (
            "Bearer ${{ secret('slack').token }}",
            json!("Bearer xoxb-123"),
        ),
        (
            "${{ freightMetadata(ctx.targetFreight.name).category }}",
            json!("hotfix"),
        ),
        (
            "${{ freightMetadata(ctx.targetFreight.name)['settings'] ?? \"default-settings\" }}",
            json!("default-settings"),
        ),
        (
            "${{ freightMetadata(ctx.targetFreight.name)?.config?.settings?.timeoutSeconds ?? 300 }}",
            json!(300),
        ),
        (
            "${{ stageMetadata(ctx.stage)['aws-region'] }}",
            json!("eu-west-1"),
        ),
        (
            "${{ stageMetadata(ctx.stage, 'aws-region') }}",
            json!("eu-west-1"),
        ),
        (
            "${{ freightMetadata(ctx.targetFreight.name, 'nope') ?? 'none' }}",
            json!("none"),
        ),
        (
            "${{ stageMetadata(ctx.stage)['tier'] ?? \"default-tier\" }}",
            json!("default-tier"),
        ),
        (
            "${{ stageMetadata(ctx.stage)?.config?.settings?.timeoutSeconds ?? 300 }}",
            json!(300),
        ),
        (
            "${{ commitFrom(\"https://github.com/example/repo.git\").ID }}",
            json!("abc1234"),
        ),
        (
            "${{ commitFrom(\"https://github.com/example/repo.git\", warehouse(\"my-warehouse\")).ID }}",
            json!("fedcba9"),
        ),
        (
            "${{ imageFrom(\"public.ecr.aws/nginx/nginx\").Tag }}",
            json!("1.25.3"),
        ),
        (
            "${{ imageFrom(\"public.ecr.aws/nginx/nginx\", warehouse(\"my-warehouse\")).Tag }}",
            json!("1.26.0"),
        ),
        (
            "${{ chartFrom(\"oci://example.com/my-chart\").Version }}",
            json!("1.0.0"),
        ),
        (
            "${{ chartFrom(\"oci://example.com/my-chart\", warehouse(\"my-warehouse\")).Version }}",
            json!("1.1.0"),
        ),
        (
            "${{ chartFrom(\"https://example.com/charts\", \"my-chart\").Version }}",
            json!("2.0.0"),
        ),
        (
            "${{ chartFrom(\"https://example.com/charts\", \"my-chart\", warehouse(\"my-warehouse\")).Version }}",
            json!("2.1.0"),
        ),
        ("${{ success() }}", json!(true)),
        ("${{ failure() }}", json!(false)),
        ("${{ always() }}", json!(true)),
        ("${{ status(\"my-step-alias\") }}", json!("Succeeded")),
        (
            "${{ semverDiff(imageFrom(vars.imageRepo).Tag, outputs['read-version'].currentVersion) }} update of ${{ vars.imageRepo }}",
            json!("Minor update of public.ecr.aws/nginx/nginx"),
        ),
        (
            "${{ outputs['indirect-push'].branch }}",
            json!("kargo/promotion/test.01j2.abc"),
        ),
        // The promotion template example.
        (
            "${{ vars.gitRepo }}",
            json!("https://github.com/example/repo.git"),
        ),
        ("${{ vars.targetBranch }}", json!("stage/test")),
        ("${{ vars.outPath }}", json!("./out")),
        ("${{ vars.srcPath }}/base", json!("./src/base")),
        (
            "${% {\"labels\": {\"app\": \"nginx\"}} %}",
            json!({"labels": {"app": "nginx"}}),
        ),
        (
            "${{ asYAML(outputs['read-config'].appConfig) }}",
            json!("image:\n    tag: 1.2.3\nreplicas: 2\n"),
        ),
        (
            "${{ asJSON(outputs['read-config'].appConfig) }}",
            json!("{\n  \"image\": {\n    \"tag\": \"1.2.3\"\n  },\n  \"replicas\": 2\n}\n"),
        ),
        (
            "${{ sharedConfigMap('my-config').repoURL }}",
            json!("https://github.com/example/config.git"),
        ),
        (
            "Bearer ${{ sharedSecret('slack').token }}",
            json!("Bearer xoxb-123"),
        ),
        (
            "${{ freightStatus(ctx.targetFreight.name).currentlyIn }}",
            json!({"test": {"since": "2025-06-01T09:00:00Z"}}),
        ),
        (
            "${{ freightStatus(ctx.targetFreight.name).metadata }}",
            json!({"category": "hotfix"}),
        ),
        (
            "${{ freightStatus(ctx.targetFreight.name).approvedFor?.prod?.approvedAt != nil }}",
            json!(true),
        ),
        (
            "Freight ${{ ctx.targetFreight.name }} was promoted to prod via a manual approval bypass (approvedFor.prod.approvedAt = ${{ freightStatus(ctx.targetFreight.name).approvedFor?.prod?.approvedAt }}).",
            json!(
                "Freight abc123 was promoted to prod via a manual approval bypass (approvedFor.prod.approvedAt = 2025-06-01T10:00:00Z)."
            ),
        ),
        (
            "${{ semverParse(task.outputs['read-version'].currentVersion).IncMinor().String() }}",
            json!("1.3.0"),
        ),
    ];
    for (template, want) in cases {
        match eval(template) {
            Ok(got) => assert_eq!(&got, want, "{template}"),
            Err(e) => panic!("{template}: {e}"),
        }
    }

    // A git subscription's expressionFilter examples (working-with-warehouses.md), where
    // commitDate and creatorDate are times.
    let mut git = Env::new()
        .with("author", json!("Alice <alice@example.com>"))
        .with("subject", json!("feat: faster"))
        .with("tag", json!("v1.4.0"));
    let at: jiff::Timestamp = "2025-06-01T10:00:00Z".parse().expect("timestamp");
    git.set_time("commitDate", at.to_zoned(jiff::tz::TimeZone::UTC));
    git.set_time("creatorDate", at.to_zoned(jiff::tz::TimeZone::UTC));
    for filter in [
        "!(author == 'Example Bot') && commitDate.After(date('2025-01-01'))",
        "creatorDate.Year() >= 2024",
        "creatorDate.After(date('2024-01-01')) && !(tag contains 'alpha')",
        "subject contains 'feat:' || subject contains 'fix:'",
        "!(author contains '<bot@example.com>')",
    ] {
        assert_eq!(
            evaluate_expression(filter, &git, &NoFunctions),
            Ok(json!(true)),
            "{filter}"
        );
    }

    // Bare expressions, as in a Warehouse's freightCreationCriteria.
    let criteria =
        "imageFrom('ghcr.io/example/frontend').Tag == imageFrom('ghcr.io/example/backend').Tag";
    assert_eq!(
        evaluate_expression(criteria, &env(), &TestFuncs::default()),
        Ok(json!(true))
    );
}

#[test]
fn semver_diff_matches_kargo() {
    let cases = [
        ("1.2.3", "2.0.0", "Major"),
        ("v1.2.3", "1.3.0", "Minor"),
        ("1.2.3", "1.2.4", "Patch"),
        ("1.2.3+a", "1.2.3+b", "Metadata"),
        ("1.2.3-rc.1", "1.2.3", "None"),
        ("1.2", "1.2.0", "None"),
        ("latest", "1.0.0", "Incomparable"),
    ];
    for (a, b, want) in cases {
        let got = eval(&format!("${{{{ semverDiff('{a}', '{b}') }}}}"));
        assert_eq!(got, Ok(json!(want)), "{a} vs {b}");
    }
}

#[test]
fn walks_json_and_leaves_keys_and_other_types_alone() {
    let config = json!({
        "repoURL": "${{ vars.gitopsRepo }}",
        "${{ ctx.stage }}": "key stays",
        "checkout": [
            {"fromFreight": true, "path": "${{ vars.srcPath }}"},
            {"branch": "${{ vars.targetBranch }}", "create": true, "depth": 1, "x": null},
        ],
        "replicas": "${{ vars.count }}",
    });
    let got = evaluate_template(&config, &env(), &TestFuncs::default());
    assert_eq!(
        got,
        Ok(json!({
            "repoURL": "https://github.com/example/kargo-demo.git",
            "${{ ctx.stage }}": "key stays",
            "checkout": [
                {"fromFreight": true, "path": "./src"},
                {"branch": "stage/test", "create": true, "depth": 1, "x": null},
            ],
            "replicas": 3,
        }))
    );
}

#[test]
fn conditions() {
    let funcs = TestFuncs::default();
    let failed = TestFuncs { failed: true };
    let cases: &[(&str, &TestFuncs, bool)] = &[
        ("${{ success() }}", &funcs, true),
        ("${{ success() }}", &failed, false),
        ("${{ failure() }}", &failed, true),
        ("${{ always() }}", &failed, true),
        ("${{ status('x') == 'Succeeded' }}", &funcs, true),
        ("${{ status('broken') == 'Errored' }}", &funcs, true),
        ("${{ status('missing') == '' }}", &funcs, true),
        ("${{ ctx.stage == 'test' && !failure() }}", &funcs, true),
        (
            "${{ semverDiff(imageFrom(vars.imageRepo).Tag, outputs['read-version'].currentVersion) != 'Major' }}",
            &funcs,
            true,
        ),
        ("${{ 'true' }}", &funcs, true),
        // No condition: run unless something failed.
        ("", &funcs, true),
        ("", &failed, false),
    ];
    for (cond, funcs, want) in cases {
        match evaluate_bool(cond, &env(), *funcs) {
            Ok(got) => assert_eq!(got, *want, "{cond}"),
            Err(e) => panic!("{cond}: {e}"),
        }
    }
}

#[test]
fn conditions_must_be_bools() {
    let funcs = TestFuncs::default();
    let e = evaluate_bool("${{ ctx.stage }}", &env(), &funcs).err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::NotBool));
    assert_eq!(
        e.map(|e| e.to_string()).unwrap_or_default(),
        "if: ${{ ctx.stage }}: expression must evaluate to a boolean, got string \"test\""
    );
    let e = evaluate_bool("success()", &env(), &funcs).err();
    assert!(
        e.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("a condition must be an expression in ${{ … }}")
    );
}

/// (template, kind, message fragment, position)
type ErrorCase = (&'static str, ErrorKind, &'static str, Option<(u32, u32)>);

#[test]
fn errors_say_what_and_where() {
    let cases: &[ErrorCase] = &[
        (
            "${{ outputs.commit2.commit }}",
            ErrorKind::Evaluation,
            "outputs has no key \"commit2\" (it has \"commit\", \"indirect-push\", \"read-config\", \"read-version\", \"update-image\"): cannot fetch commit from nil",
            Some((1, 17)),
        ),
        (
            "${{ imageFrom(vars.repo).Tag }}",
            ErrorKind::Evaluation,
            "imageFrom found no image from repository \"x\" in the Freight: cannot fetch Tag from nil",
            None,
        ),
        (
            "${{ 1 + }}",
            ErrorKind::Syntax,
            "unexpected token end of expression",
            Some((1, 6)),
        ),
        (
            "${{ ctx.stage == = 'x' }}",
            ErrorKind::Syntax,
            "unexpected token \"=\"",
            Some((1, 15)),
        ),
        (
            "${{ 'unterminated }}",
            ErrorKind::Syntax,
            "literal not terminated",
            Some((1, 2)),
        ),
        (
            "${{ '{{.domain}}' }}",
            ErrorKind::Syntax,
            "literal not terminated",
            Some((1, 2)),
        ),
        (
            "${{ }}",
            ErrorKind::Syntax,
            "empty expression",
            Some((1, 1)),
        ),
        (
            "x ${{ vars.x ",
            ErrorKind::Template,
            "unclosed expression: expected \"}}\"",
            None,
        ),
        (
            "${{ 'a' + 1 }}",
            ErrorKind::Evaluation,
            "invalid operation: + (mismatched types string and int)",
            Some((1, 6)),
        ),
        (
            "${{ imageFrom(vars.nope).Tag }}",
            ErrorKind::Evaluation,
            "imageFrom: first argument must be a string, got nil (vars.nope)",
            Some((1, 2)),
        ),
        (
            "${{ imageFrom('ambiguous') }}",
            ErrorKind::Evaluation,
            "imageFrom: multiple requested Freight",
            Some((1, 2)),
        ),
        (
            "${{ imageFrom(vars.imageRepo, ctx.targetFreight.origin) }}",
            ErrorKind::Evaluation,
            "second argument must be a Freight origin from warehouse(name), got map",
            None,
        ),
        (
            "${{ imageFrom(vars.imageRepo).tag }}",
            ErrorKind::Evaluation,
            "type Image has no field tag (fields: RepoURL, Tag, Digest, Annotations, SubscriptionName)",
            None,
        ),
        (
            "${{ var.x }}",
            ErrorKind::Evaluation,
            "var is not defined: cannot fetch x from nil",
            None,
        ),
        (
            "${{ vars.enabled ? 1 }}",
            ErrorKind::Syntax,
            "expected \":\"",
            None,
        ),
        (
            "${{ vars.repo ? 1 : 2 }}",
            ErrorKind::Evaluation,
            "condition of ?: must be a bool, got string \"x\"",
            None,
        ),
        (
            "${{ vars.repo && true }}",
            ErrorKind::Evaluation,
            "left side of && must be a bool",
            None,
        ),
        (
            "${{ [1][3] }}",
            ErrorKind::Evaluation,
            "index 3 out of range",
            None,
        ),
        (
            "${{ 1 % 0 }}",
            ErrorKind::Evaluation,
            "integer divide by zero",
            None,
        ),
        (
            "${{ nope(1) }}",
            ErrorKind::Evaluation,
            "nope: unknown function",
            None,
        ),
        (
            "${{ semverParse('1.2.3').Majr() }}",
            ErrorKind::Evaluation,
            "semverParse('1.2.3').Majr: type *semver.Version has no method Majr",
            Some((1, 22)),
        ),
        (
            "${{ # * 2 }}",
            ErrorKind::Syntax,
            "cannot use pointer accessor outside predicate",
            None,
        ),
        (
            "${{ let x = 1 }}",
            ErrorKind::Syntax,
            "expected \";\"",
            None,
        ),
        (
            "${{ 'nan' }}",
            ErrorKind::Evaluation,
            "json: unsupported value: NaN",
            None,
        ),
        (
            "${{ status('') }}",
            ErrorKind::Evaluation,
            "status: argument must not be empty",
            None,
        ),
        (
            "${{ nil ?? 1 + 1 }}",
            ErrorKind::Syntax,
            "operator (+) and coalesce expressions (??) cannot be mixed",
            Some((1, 11)),
        ),
        (
            "${{ 99999999999999999999 }}",
            ErrorKind::Syntax,
            "integer literal \"99999999999999999999\" is too large",
            None,
        ),
        (
            "${{ all([1], # + 1) }}",
            ErrorKind::Evaluation,
            "all: predicate should return boolean, got int 2",
            Some((1, 11)),
        ),
        (
            "${{ reduce([], #acc) }}",
            ErrorKind::Evaluation,
            "reduce: reduce of empty array with no initial value",
            None,
        ),
        (
            "${{ map(1, #) }}",
            ErrorKind::Evaluation,
            "map: cannot iterate over int 1 (1)",
            None,
        ),
        (
            "${{ map([nil], .x) }}",
            ErrorKind::Evaluation,
            "the predicate's # is nil: cannot fetch x from nil",
            None,
        ),
        (
            "${{ filter([1]) }}",
            ErrorKind::Syntax,
            "filter expects a predicate",
            None,
        ),
        (
            "${{ ctx.stage | upper }}",
            ErrorKind::Syntax,
            "expected \"(\"",
            None,
        ),
    ];
    for (template, kind, fragment, position) in cases {
        let Err(e) = eval(template) else {
            panic!("{template}: expected an error");
        };
        assert_eq!(e.kind, *kind, "{template}: {e}");
        assert!(
            e.message.contains(fragment) || e.to_string().contains(fragment),
            "{template}: {e}"
        );
        if let Some((line, column)) = position {
            assert_eq!(
                e.position,
                Some(Position {
                    line: *line,
                    column: *column
                }),
                "{template}: {e}"
            );
        }
    }
}

#[test]
fn error_message_names_the_field_and_step() {
    let config = json!({"images": [{"image": "nginx", "tag": "${{ imageFrom(vars.repo).Tag }}"}]});
    let e = evaluate_template(&config, &env(), &TestFuncs::default())
        .err()
        .map(|e| e.under("config").in_step("update-image"));
    assert_eq!(
        e.map(|e| e.to_string()).unwrap_or_default(),
        "step \"update-image\": config.images[0].tag: ${{ imageFrom(vars.repo).Tag }}: \
         imageFrom found no image from repository \"x\" in the Freight: cannot fetch Tag from nil (1:22)"
    );

    let missing =
        json!({"message": "${{ outputs['open-pr'].pr.url }}", "weird key": ["${{ x.y }}"]});
    let e = evaluate_template(&missing, &env(), &TestFuncs::default()).err();
    assert_eq!(e.map(|e| e.path), Some("message".to_string()));
    let e = evaluate_template(
        &json!({"weird key": ["${{ x.y }}"]}),
        &env(),
        &TestFuncs::default(),
    )
    .err();
    assert_eq!(e.map(|e| e.path), Some("[\"weird key\"][0]".to_string()));
}

#[test]
fn multi_line_positions() {
    let e = eval("${{ ctx.stage == 'test'\n  && outputs.none.x }}").err();
    assert_eq!(
        e.and_then(|e| e.position),
        Some(Position {
            line: 2,
            column: 18
        })
    );
}

#[test]
fn env_vars_build_on_each_other() {
    let mut env = Env::for_promotion(&PromotionContext {
        stage: "uat".to_string(),
        ..PromotionContext::default()
    });
    let funcs = NoFunctions;
    let branch = evaluate_template(&json!("stage/${{ ctx.stage }}"), &env, &funcs);
    assert_eq!(branch, Ok(json!("stage/uat")));
    env.set_var("targetBranch", json!("stage/uat"));
    let got = evaluate_template(&json!("${{ vars.targetBranch }}-x"), &env, &funcs);
    assert_eq!(got, Ok(json!("stage/uat-x")));
    // Promotion-level vars see no outputs.
    let e = evaluate_template(&json!("${{ outputs.a.b }}"), &env, &funcs).err();
    assert!(
        e.map(|e| e.message)
            .unwrap_or_default()
            .starts_with("outputs is not defined")
    );
    let e = evaluate_template(&json!("${{ imageFrom('x') }}"), &env, &funcs).err();
    assert_eq!(
        e.map(|e| e.message),
        Some("imageFrom: not available here".to_string())
    );
}

#[test]
fn bare_expressions_over_other_roots() {
    let env = Env::new().with(
        "response",
        json!({"status": 200, "body": {"ok": true, "items": [1, 2]}, "headers": {"Content-Type": "application/json"}}),
    );
    let cases: &[(&str, Value)] = &[
        ("response.status == 200 && response.body.ok", json!(true)),
        ("len(response.body.items) > 1", json!(true)),
        (
            "response.headers['Content-Type']",
            json!("application/json"),
        ),
        ("response.body", json!({"ok": true, "items": [1, 2]})),
        ("response.status / 2", json!(100)),
    ];
    for (expr, want) in cases {
        assert_eq!(
            evaluate_expression(expr, &env, &NoFunctions).as_ref(),
            Ok(want),
            "{expr}"
        );
    }
}

#[test]
fn go_number_and_string_formats() {
    use super::value::{Val, go_float_g, go_quote};
    assert_eq!(go_float_g(1e6), "1e+06");
    assert_eq!(go_float_g(123456.0), "123456");
    assert_eq!(go_float_g(0.0001), "0.0001");
    assert_eq!(go_float_g(0.00001), "1e-05");
    assert_eq!(Val::Float(1e21).go_json(), Ok("1e+21".to_string()));
    assert_eq!(Val::Float(1e-7).go_json(), Ok("1e-7".to_string()));
    assert_eq!(Val::Float(2.0).go_json(), Ok("2".to_string()));
    assert_eq!(Val::Float(0.1).go_json(), Ok("0.1".to_string()));
    assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    assert_eq!(
        Val::Str("<&>\u{2028}\t".to_string()).go_json(),
        Ok("\"\\u003c\\u0026\\u003e\\u2028\\t\"".to_string())
    );
    let v = Val::from_json(&json!({"b": [1, {"c": null}], "a": "x"}));
    assert_eq!(
        v.go_json_indent("  "),
        Ok(
            "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    }\n  ]\n}"
                .to_string()
        )
    );
    assert_eq!(
        eval("${{ asJSON({'a': 1}) }}"),
        Ok(json!("{\n  \"a\": 1\n}\n"))
    );
}

/// expr-lang answers that haul used to get wrong, and the closures and builtins it lacked.
#[test]
fn expr_lang_language_and_builtins() {
    let cases: &[(&str, Value)] = &[
        ("${{ .5 }}", json!(0.5)),
        ("${{ -.5 }}", json!(-0.5)),
        ("${{ abs(.5) }}", json!(0.5)),
        ("${{ 1 < 2 < 3 == true }}", json!(true)),
        ("${{ 3 > 2 > 1 }}", json!(true)),
        ("${{ 1 < 3 < 2 }}", json!(false)),
        ("${{ max([1, 2, 4, 10], 20, [29, 23, -19]) }}", json!(29)),
        ("${{ min([1, 2, 4, 10], 20, [29, 23, -19]) }}", json!(-19)),
        ("${{ replace('aaa', 'a', 'b', 2) }}", json!("bba")),
        ("${{ map([1, 2, 3], # * 2) }}", json!([2, 4, 6])),
        ("${{ filter([1, 2, 3, 4], # % 2 == 0) }}", json!([2, 4])),
        (
            "${{ all([1, 2], # > 0) && any([1, 2], # > 1) && none([1], # > 1) }}",
            json!(true),
        ),
        ("${{ one([1, 2], # > 1) }}", json!(true)),
        ("${{ count([1, 2, 3], # > 1) }}", json!(2)),
        ("${{ find([1, 2, 3], # > 1) }}", json!(2)),
        ("${{ findIndex([1, 2, 3], # > 1) }}", json!(1)),
        ("${{ findLast([1, 2, 3], # > 1) }}", json!(3)),
        ("${{ findLastIndex([1, 2, 3], # > 5) }}", json!(-1)),
        (
            "${{ groupBy([1, 2, 3], # % 2 == 0) }}",
            json!({"false": [1, 3], "true": [2]}),
        ),
        ("${{ sum([1, 2, 3]) }}", json!(6)),
        ("${{ sum([1, 2], # * 1.5) }}", json!(4.5)),
        ("${{ mean([1, 2, 3, 4]) }}", json!(2.5)),
        ("${{ median([1, 7, 3]) }}", json!(3)),
        ("${{ reduce(1..4, #acc + #) }}", json!(10)),
        ("${{ reduce([1, 2], #acc + # * #index, 10) }}", json!(12)),
        (
            "${{ sortBy([{n: 2}, {n: 1}], .n) }}",
            json!([{"n": 1}, {"n": 2}]),
        ),
        ("${{ sort([3, 1, 2], 'desc') }}", json!([3, 2, 1])),
        (
            "${{ [1, 2, 3] | map(# + 1) | filter(# > 2) }}",
            json!([3, 4]),
        ),
        ("${{ filter([{a: 1}, {a: 2}], .a > 1)[0].a }}", json!(2)),
        ("${{ map([[1, 2]], map(#, # * 10)) }}", json!([[10, 20]])),
        ("${{ let x = 2; let y = x * 3; y + 1 }}", json!(7)),
        (
            "${{ if 1 > 2 { 'a' } else if 2 > 1 { 'b' } else { 'c' } }}",
            json!("b"),
        ),
        ("${{ 1; 2; 3 }}", json!(3)),
        ("${{ (1; 2) }}", json!(2)),
        ("${{ bitand(12, 10) + bitshl(1, 4) }}", json!(24)),
        ("${{ toBase64('hi') }}", json!("aGk=")),
        ("${{ concat([1], [2, 3]) }}", json!([1, 2, 3])),
        ("${{ flatten([1, [2, [3]]]) }}", json!([1, 2, 3])),
        ("${{ uniq([1, 1.0, 2, 'a', 'a']) }}", json!([1, 2, "a"])),
        ("${{ take([1, 2, 3], 2) }}", json!([1, 2])),
        ("${{ fromPairs(toPairs({a: 1})) }}", json!({"a": 1})),
        ("${{ splitAfter('a,b,c', ',') }}", json!(["a,", "b,", "c"])),
        ("${{ reverse([1, 2]) }}", json!([2, 1])),
        ("${{ [1, 2,] }}", json!([1, 2])),
        ("${{ {('a' + 'b'): 1, c: 2,} }}", json!({"ab": 1, "c": 2})),
        ("${{ duration('1h') > duration('30m') }}", json!(true)),
        ("${{ duration('90m').Hours() }}", json!(1.5)),
        ("${{ string(duration('90s')) }}", json!("1m30s")),
        (
            "${{ duration('1h') - duration('1m') == duration('59m') }}",
            json!(true),
        ),
        ("${{ duration('1s') }}", json!(1_000_000_000)),
        ("${{ filter([1, 2, 3], # in [2, 3]) }}", json!([2, 3])),
        ("${{ filter([1, 2, 3], # not in [2, 3]) }}", json!([1])),
        (
            "${{ map(['a', 'b'], # + string(#index)) }}",
            json!(["a0", "b1"]),
        ),
        (
            "${{ filter(['ab', 'cd'], # startsWith 'c') }}",
            json!(["cd"]),
        ),
        (
            "${{ map([1, 2], { let y = # * 2; y + 1 }) }}",
            json!([3, 5]),
        ),
        ("${{ let xs = [3, 1]; sort(xs)[0] }}", json!(1)),
    ];
    for (template, want) in cases {
        match eval(template) {
            Ok(got) => assert_eq!(&got, want, "{template}"),
            Err(e) => panic!("{template}: {e}"),
        }
    }
    let Err(e) = eval("${{ get(1, 2) }}") else {
        panic!("get(1, 2) must fail");
    };
    assert!(
        e.message.contains("type int does not support indexing"),
        "{e}"
    );
}

/// Kargo's wait-for-approval docs record the approvers with a predicate over the step's output.
#[test]
fn kargo_documented_predicate_example() {
    let env = env().with_outputs(obj(json!({
        "approve": {"responses": [
            {"user": "alice", "message": "ship it"},
            {"user": "bob", "message": null},
        ]},
    })));
    let template = "Approved by:\n${{ join(map(outputs.approve.responses, \"- \" + .user + (.message == nil ? \"\" : \": \" + .message)), \"\\n\") }}\n";
    let got = evaluate_template(
        &Value::String(template.to_string()),
        &env,
        &TestFuncs::default(),
    )
    .expect("evaluates");
    assert_eq!(got, json!("Approved by:\n- alice: ship it\n- bob\n"));
}

/// Go's `time.Month`/`time.Weekday` and `date()` without a layout, as expr-lang v1.17 answers
/// (checked against expr-lang v1.17.7 with Go 1.26).
#[test]
fn time_values_as_expr_lang_answers() {
    let mut env = Env::new();
    let at: jiff::Timestamp = "2025-06-01T10:00:00Z".parse().expect("timestamp");
    env.set_time("commitDate", at.to_zoned(jiff::tz::TimeZone::UTC));
    let ok = |e: &str| evaluate_expression(e, &env, &NoFunctions);
    let cases = [
        // A Month is not an int: equal to none, and printed by name.
        ("commitDate.Month() == 6", json!(false)),
        ("int(commitDate.Month()) == 6", json!(true)),
        ("string(commitDate.Month())", json!("June")),
        ("commitDate.Month().String()", json!("June")),
        ("commitDate.Weekday().String()", json!("Sunday")),
        ("toJSON(commitDate.Month())", json!("6")),
        ("commitDate.Month()", json!(6)),
        ("commitDate.Year() >= 2025", json!(true)),
        // Go's RFC 822, 850 and 1123 layouts are tried too.
        (
            "date('Sun, 01 Jun 2025 10:00:00 MST').Unix()",
            json!(1_748_772_000),
        ),
        ("date('01 Jun 25 10:00 UTC').Unix()", json!(1_748_772_000)),
        ("date('Sunday, 01-Jun-25 10:00:00 GMT+3').Hour()", json!(13)),
        (
            "date('Sunday, 01-Jun-25 10:00:00 GMT+3').Unix()",
            json!(1_748_772_000),
        ),
        (
            "date('2025-06-01T12:00:00+02:00') == commitDate",
            json!(true),
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(ok(expr), Ok(want), "{expr}");
    }
    for bad in [
        "commitDate.Month() > 5",
        "commitDate.Month() + 1",
        "commitDate > '2025-01-01'",
        "date('June 1st')",
    ] {
        assert!(ok(bad).is_err(), "{bad}: {:?}", ok(bad));
    }
}

/// Kargo's `artifactFrom` (generic subscriptions) and `semverParse` values.
#[test]
fn artifact_from_and_semver_parse() {
    let cases: &[(&str, Value)] = &[
        (
            "${{ artifactFrom('my-artifact').Version }}",
            json!("v1.0.0"),
        ),
        (
            "${{ artifactFrom('my-artifact').Metadata.url }}",
            json!("https://example.com/b-1.0.0.tgz"),
        ),
        (
            "${{ artifactFrom('my-artifact') }}",
            json!({
                "ArtifactType": "application/vnd.example.bundle",
                "SubscriptionName": "my-artifact",
                "Version": "v1.0.0",
                "Metadata": {"size": 42, "url": "https://example.com/b-1.0.0.tgz"},
            }),
        ),
        ("${{ artifactFrom('other') == nil }}", json!(true)),
        (
            "${{ artifactFrom('my-artifact', warehouse('w')) ?? 'none' }}",
            json!("none"),
        ),
        ("${{ semverParse('v1.2.3-rc.1+b7').Major() }}", json!(1)),
        (
            "${{ semverParse('v1.2.3-rc.1+b7').Prerelease() }}",
            json!("rc.1"),
        ),
        (
            "${{ semverParse('v1.2.3-rc.1+b7').Metadata() }}",
            json!("b7"),
        ),
        ("${{ semverParse('v1.2').Original() }}", json!("v1.2")),
        ("${{ semverParse('v1.2') }}", json!("1.2.0")),
        // A non-string result is JSON in mixed text, as in Kargo.
        (
            "v${{ semverParse('1.2.3').IncPatch() }}",
            json!("v\"1.2.4\""),
        ),
        (
            "${{ semverParse('1.10.0').GreaterThan(semverParse('1.9.0')) }}",
            json!(true),
        ),
        (
            "${{ semverParse('1.0.0').Compare(semverParse('1.0.0+meta')) }}",
            json!(0),
        ),
        (
            "${{ semverParse('1.2.3') == semverParse('1.2.3') }}",
            json!(true),
        ),
        (
            "${{ asYAML({'versions': ['1.0', '2'], 'ok': 'yes', 'msg': 'a: b'}) }}",
            json!("msg: 'a: b'\nok: \"yes\"\nversions:\n    - \"1.0\"\n    - \"2\"\n"),
        ),
    ];
    for (template, want) in cases {
        match eval(template) {
            Ok(got) => assert_eq!(&got, want, "{template}"),
            Err(e) => panic!("{template}: {e}"),
        }
    }
    let e = eval("${{ semverParse('not-a-version') }}")
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|m| m.contains("semverParse: invalid semantic version")),
        "{e:?}"
    );
    let e = eval("${{ semverParse('1.0.0').LessThan('2.0.0') }}")
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref().is_some_and(|m| m.contains("*semver.Version")),
        "{e:?}"
    );
    let e = eval("${{ freightStatus('') }}")
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|m| m.contains("must not be empty")),
        "{e:?}"
    );
    assert_eq!(
        eval("${{ freightStatus('gone') ?? 'none' }}"),
        Ok(json!("none"))
    );
}
