//! The Helm chart as an operator installs it: `helm lint` and `helm template` with the real helm
//! binary, the rendered manifests accepted by a real kube-apiserver (`kubectl apply
//! --dry-run=server`), and the controller's RBAC pinned rule by rule, so that a broadening fails
//! here rather than in a security review.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use support::helm::isolated;
use support::{kubectl_stdin, namespace};

/// Runs helm isolated from the user's helm setup and cluster (see `support::helm::isolated`).
fn helm(args: &[&str]) -> (bool, String, String) {
    let out = isolated(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `helm template haul charts/haul --namespace <ns>` plus `extra`; panics with helm's output on failure.
fn template(ns: &str, extra: &[&str]) -> String {
    let mut args = vec!["template", "haul", "charts/haul", "--namespace", ns];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm {args:?} failed:\n{stderr}\n{stdout}");
    stdout
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("helm template output is YAML")
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<String> = docs
                .iter()
                .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
                .collect();
            panic!("no {kind} {name} rendered; have {have:?}")
        })
}

/// A Role's or ClusterRole's rules as (apiGroup, resource, verb) triples, a rule limited to
/// resourceNames as `resource:name`; panics on anything a triple cannot express
/// (nonResourceURLs, wildcards).
fn triples(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "unexpected rule {rule}"
        );
        let names: Option<Vec<String>> = rule.get("resourceNames").map(|n| {
            n.as_array()
                .expect("resourceNames")
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        });
        let list = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap_or_else(|| panic!("rule without {k}: {rule}"))
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in rule {rule}");
                    match &names {
                        None => {
                            set.insert((g.clone(), r.clone(), v));
                        }
                        Some(names) => {
                            for n in names {
                                set.insert((g.clone(), format!("{r}:{n}"), v.clone()));
                            }
                        }
                    }
                }
            }
        }
    }
    set
}

fn expect_triples(spec: &[(&str, &[&str], &[&str])]) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for (g, resources, verbs) in spec {
        for r in *resources {
            for v in *verbs {
                set.insert((g.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    set
}

const KARGO_KINDS: &[&str] = &[
    "projects",
    "projectconfigs",
    "warehouses",
    "freights",
    "stages",
    "promotions",
    "promotiontasks",
    "clusterpromotiontasks",
    "clusterconfigs",
];

#[test]
fn chart_lints() {
    let (ok, stdout, stderr) = helm(&["lint", "--strict", "charts/haul"]);
    assert!(ok, "helm lint failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
    // The optional parts lint too.
    let (ok, stdout, stderr) = helm(&[
        "lint",
        "--strict",
        "charts/haul",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/haul",
        "--set",
        "authorization.stagePromoters[0].name=prod-promoters",
        "--set",
        "authorization.stagePromoters[0].namespace=my-app",
        "--set",
        "authorization.stagePromoters[0].stages={prod}",
        "--set",
        "authorization.stagePromoters[0].subjects[0].kind=Group",
        "--set",
        "authorization.stagePromoters[0].subjects[0].name=release-managers",
    ]);
    assert!(ok, "helm lint with options failed:\n{stdout}\n{stderr}");
}

#[test]
fn rendered_chart_applies_to_the_api_server() {
    let ns = namespace("chart");
    let rendered = template(&ns, &["--include-crds"]);
    let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered)
        .success("kubectl apply --dry-run=server of the rendered chart");
    for object in [
        "deployment.apps/haul",
        "serviceaccount/haul",
        "service/haul-metrics",
        "clusterrole.rbac.authorization.k8s.io/haul-controller",
        "clusterrolebinding.rbac.authorization.k8s.io/haul-controller",
        "role.rbac.authorization.k8s.io/haul-leader-election",
        "rolebinding.rbac.authorization.k8s.io/haul-leader-election",
        "clusterrole.rbac.authorization.k8s.io/haul-viewer",
        "clusterrole.rbac.authorization.k8s.io/haul-promoter",
        "clusterrole.rbac.authorization.k8s.io/haul-admin",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/haul",
        "validatingadmissionpolicy.admissionregistration.k8s.io/haul-promote-stage",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/haul-promote-stage",
        "validatingadmissionpolicy.admissionregistration.k8s.io/haul-approve-freight",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/haul-approve-freight",
        "validatingadmissionpolicy.admissionregistration.k8s.io/haul-create-actor",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/haul-create-actor",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/haul",
        "service/haul-webhook",
        "secret/haul-webhook-tls",
        "cronjob.batch/haul-garbage-collector",
        "serviceaccount/haul-garbage-collector",
        "clusterrole.rbac.authorization.k8s.io/haul-garbage-collector",
        "clusterrolebinding.rbac.authorization.k8s.io/haul-garbage-collector",
        "customresourcedefinition.apiextensions.k8s.io/stages.kargo.akuity.io",
    ] {
        assert!(
            out.stdout.contains(object),
            "{object} not applied:\n{}",
            out.stdout
        );
    }

    // The values-driven prod-only promoter Role renders into a project namespace and applies.
    let project = namespace("chart-project");
    let rendered = template(
        &ns,
        &[
            "--set",
            "authorization.stagePromoters[0].name=prod-promoters",
            "--set",
            &format!("authorization.stagePromoters[0].namespace={project}"),
            "--set",
            "authorization.stagePromoters[0].stages={prod}",
            "--set",
            "authorization.stagePromoters[0].approve=true",
            "--set",
            "authorization.stagePromoters[0].subjects[0].kind=Group",
            "--set",
            "authorization.stagePromoters[0].subjects[0].name=release-managers",
            "--set",
            "authorization.stagePromoters[0].subjects[0].apiGroup=rbac.authorization.k8s.io",
            "--show-only",
            "templates/user-roles.yaml",
        ],
    );
    let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered)
        .success("apply the stage promoter Role");
    assert!(
        out.stdout
            .contains("role.rbac.authorization.k8s.io/prod-promoters"),
        "{}",
        out.stdout
    );
    let d = docs(&rendered);
    let role = find(&d, "Role", "prod-promoters");
    assert_eq!(role["metadata"]["namespace"], project.as_str());
    let rules = role["rules"].as_array().expect("rules");
    assert_eq!(rules[0]["resources"], serde_json::json!(["stages"]));
    assert_eq!(rules[0]["resourceNames"], serde_json::json!(["prod"]));
    assert_eq!(rules[0]["verbs"], serde_json::json!(["promote"]));
    assert_eq!(
        find(&d, "RoleBinding", "prod-promoters-viewer")["roleRef"]["name"],
        "haul-viewer"
    );

    // An empty Stage list would mean "every Stage": refused at render time.
    let (ok, _, stderr) = helm(&[
        "template",
        "haul",
        "charts/haul",
        "--set",
        "authorization.stagePromoters[0].name=x",
        "--set",
        "authorization.stagePromoters[0].namespace=y",
        "--set",
        "authorization.stagePromoters[0].subjects[0].kind=Group",
        "--set",
        "authorization.stagePromoters[0].subjects[0].name=z",
    ]);
    assert!(!ok, "a stagePromoter without stages rendered");
    assert!(
        stderr.contains("stages must list at least one Stage"),
        "{stderr}"
    );
}

#[test]
fn controller_rbac_is_exactly_what_it_uses() {
    let d = docs(&template("haul", &[]));
    let cr = find(&d, "ClusterRole", "haul-controller");
    let expected = expect_triples(&[
        ("kargo.akuity.io", KARGO_KINDS, &["get", "list", "watch"]),
        (
            "kargo.akuity.io",
            &[
                "warehouses/status",
                "freights/status",
                "stages/status",
                "promotions/status",
                "projectconfigs/status",
                "projects/status",
                "clusterconfigs/status",
            ],
            &["patch"],
        ),
        // Projects: Kargo's finalizer; their namespaces; Kargo's default project roles, bound
        // to the chart's user ClusterRoles and to nothing else.
        ("kargo.akuity.io", &["projects"], &["patch"]),
        ("", &["namespaces"], &["get", "create", "patch", "delete"]),
        ("", &["serviceaccounts"], &["create", "patch"]),
        (
            "rbac.authorization.k8s.io",
            &["rolebindings"],
            &["create", "patch"],
        ),
        (
            "rbac.authorization.k8s.io",
            &[
                "clusterroles:haul-admin",
                "clusterroles:haul-promoter",
                "clusterroles:haul-viewer",
            ],
            &["bind"],
        ),
        ("kargo.akuity.io", &["freights", "promotions"], &["create"]),
        // set-freight-alias sets a Freight's alias field and label.
        ("kargo.akuity.io", &["freights"], &["patch"]),
        // Auto-promotion passes the same admission check as people.
        ("kargo.akuity.io", &["stages"], &["promote"]),
        ("", &["secrets"], &["get", "list"]),
        ("", &["configmaps"], &["list"]),
        (
            "argoproj.io",
            &["applications"],
            &["get", "list", "watch", "patch"],
        ),
        (
            "argoproj.io",
            &["analysistemplates", "clusteranalysistemplates"],
            &["get"],
        ),
        // patch: aborting a verification terminates its AnalysisRun.
        (
            "argoproj.io",
            &["analysisruns"],
            &["get", "create", "patch"],
        ),
        // The identity check reads which identity the admission policies expect.
        (
            "admissionregistration.k8s.io",
            &[
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
            ],
            &["list"],
        ),
        ("events.k8s.io", &["events"], &["create", "patch"]),
        ("", &["events"], &["create", "patch"]),
    ]);
    let actual = triples(cr);
    let extra: Vec<_> = actual.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "controller ClusterRole drifted\n  granted but not expected: {extra:?}\n  expected but not granted: {missing:?}"
    );

    let crb = find(&d, "ClusterRoleBinding", "haul-controller");
    assert_eq!(crb["roleRef"]["name"], "haul-controller");
    assert_eq!(
        crb["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "haul", "namespace": "haul"}])
    );

    // Leader election: Leases in the release namespace only.
    let role = find(&d, "Role", "haul-leader-election");
    assert_eq!(role["metadata"]["namespace"], "haul");
    assert_eq!(
        triples(role),
        expect_triples(&[(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update", "patch"]
        )])
    );
    let rb = find(&d, "RoleBinding", "haul-leader-election");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["subjects"][0]["name"], "haul");

    // Exactly one ClusterRole/Role pair is bound to the controller: nothing else grants it more.
    let bound_to_sa: Vec<String> = d
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("ClusterRoleBinding" | "RoleBinding")
            ) && o["subjects"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["kind"] == "ServiceAccount" && s["name"] == "haul")
            })
        })
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["roleRef"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        bound_to_sa,
        [
            "ClusterRoleBinding/haul-controller",
            "RoleBinding/haul-leader-election"
        ]
    );
}

#[test]
fn garbage_collector_runs_haul_gc_with_only_list_and_delete() {
    let d = docs(&template(
        "haul",
        &[
            "--set",
            "garbageCollector.schedule=*/30 * * * *",
            "--set",
            "garbageCollector.maxRetainedPromotions=5",
            "--set",
            "garbageCollector.minFreightDeletionAge=72h",
            "--set",
            "garbageCollector.dryRun=true",
        ],
    ));
    // Its own ServiceAccount and ClusterRole: the controller's gains no `delete`.
    let cr = find(&d, "ClusterRole", "haul-garbage-collector");
    assert_eq!(
        triples(cr),
        expect_triples(&[
            ("kargo.akuity.io", &["stages", "warehouses"], &["list"]),
            (
                "kargo.akuity.io",
                &["promotions", "freights"],
                &["list", "delete"]
            ),
        ])
    );
    let crb = find(&d, "ClusterRoleBinding", "haul-garbage-collector");
    assert_eq!(crb["roleRef"]["name"], "haul-garbage-collector");
    assert_eq!(
        crb["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "haul-garbage-collector", "namespace": "haul"}])
    );
    find(&d, "ServiceAccount", "haul-garbage-collector");

    let cj = find(&d, "CronJob", "haul-garbage-collector");
    assert_eq!(cj["spec"]["schedule"], "*/30 * * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "haul-garbage-collector");
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["args"], serde_json::json!(["gc"]));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let env: std::collections::BTreeMap<&str, &str> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .collect();
    for (k, v) in [
        ("MAX_RETAINED_PROMOTIONS", "5"),
        ("MIN_PROMOTION_DELETION_AGE", "336h"),
        ("MAX_RETAINED_FREIGHT", "20"),
        ("MIN_FREIGHT_DELETION_AGE", "72h"),
        ("HAUL_GC_DRY_RUN", "true"),
    ] {
        assert_eq!(env.get(k), Some(&v), "{k} in {env:?}");
    }
    // Not selected by the controller's Deployment, PDB or Services.
    let labels = &cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/component"], "garbage-collector");

    let d = docs(&template(
        "haul",
        &["--set", "garbageCollector.enabled=false"],
    ));
    assert!(
        !d.iter()
            .any(|o| o["metadata"]["name"] == "haul-garbage-collector"),
        "garbage collector rendered while disabled"
    );
}

#[test]
fn user_roles_grant_viewing_and_promoting() {
    let d = docs(&template("haul", &[]));
    let viewer = expect_triples(&[("kargo.akuity.io", KARGO_KINDS, &["get", "list", "watch"])]);
    assert_eq!(triples(find(&d, "ClusterRole", "haul-viewer")), viewer);
    let mut promoter = viewer.clone();
    promoter.extend(expect_triples(&[
        ("kargo.akuity.io", &["promotions"], &["create", "patch"]),
        ("kargo.akuity.io", &["stages"], &["promote"]),
        ("kargo.akuity.io", &["freights/status"], &["get", "patch"]),
    ]));
    assert_eq!(triples(find(&d, "ClusterRole", "haul-promoter")), promoter);
    // Bound to each project's kargo-admin: the project's Kargo objects, no Secrets, no RBAC.
    let mut admin = promoter.clone();
    admin.extend(expect_triples(&[
        (
            "kargo.akuity.io",
            &[
                "warehouses",
                "stages",
                "freights",
                "promotiontasks",
                "projectconfigs",
            ],
            &["create", "update", "patch", "delete"],
        ),
        ("kargo.akuity.io", &["promotions"], &["delete"]),
        ("", &["events"], &["get", "list", "watch"]),
        ("events.k8s.io", &["events"], &["get", "list", "watch"]),
    ]));
    assert_eq!(triples(find(&d, "ClusterRole", "haul-admin")), admin);

    let d = docs(&template("haul", &["--set", "rbac.userRoles=false"]));
    assert!(
        !d.iter().any(|o| o["metadata"]["name"] == "haul-viewer"),
        "rbac.userRoles=false still renders haul-viewer"
    );
    // Without the user roles the controller binds none and may bind none.
    let cr = find(&d, "ClusterRole", "haul-controller");
    assert!(
        !triples(cr).iter().any(|(_, _, v)| v == "bind"),
        "bind granted without the user roles"
    );
    let deployment = find(&d, "Deployment", "haul");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "HAUL_PROJECT_ROLES" && e["value"] == "false"),
        "{env}"
    );
}

#[test]
fn admission_policies_check_the_promote_verb() {
    let d = docs(&template("haul", &[]));
    let promote = find(&d, "ValidatingAdmissionPolicy", "haul-promote-stage");
    assert_eq!(promote["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(promote["spec"]["failurePolicy"], "Fail");
    let rules = &promote["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["operations"], serde_json::json!(["CREATE"]));
    assert_eq!(rules["resources"], serde_json::json!(["promotions"]));
    let v = &promote["spec"]["validations"][0];
    let expr = v["expression"].as_str().expect("expression");
    for part in [
        "authorizer.group('kargo.akuity.io').resource('stages')",
        ".name(object.spec.stage)",
        ".check('promote').allowed()",
    ] {
        assert!(expr.contains(part), "{part} not in {expr}");
    }
    let msg = v["messageExpression"].as_str().expect("messageExpression");
    assert!(msg.contains("request.userInfo.username"), "{msg}");

    let approve = find(&d, "ValidatingAdmissionPolicy", "haul-approve-freight");
    let rules = &approve["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["operations"], serde_json::json!(["UPDATE"]));
    assert_eq!(rules["resources"], serde_json::json!(["freights/status"]));

    for name in ["haul-promote-stage", "haul-approve-freight"] {
        let b = find(&d, "ValidatingAdmissionPolicyBinding", name);
        assert_eq!(b["spec"]["policyName"], name);
        assert_eq!(b["spec"]["validationActions"], serde_json::json!(["Deny"]));
    }

    let d = docs(&template(
        "haul",
        &["--set", "authorization.admissionPolicy.enabled=false"],
    ));
    assert!(
        !d.iter().any(|o| o["kind"] == "ValidatingAdmissionPolicy"),
        "admissionPolicy.enabled=false still renders policies"
    );
}

#[test]
fn deployment_runs_the_controller_restricted() {
    let d = docs(&template(
        "haul",
        &[
            "--set",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/haul",
            "--set",
            "metrics.port=9095",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "extraEnv[0].name=AWS_REGION",
            "--set",
            "extraEnv[0].value=eu-central-1",
        ],
    ));
    let sa = find(&d, "ServiceAccount", "haul");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/haul"
    );

    let dep = find(&d, "Deployment", "haul");
    assert_eq!(
        dep["spec"]["replicas"], 2,
        "leader election: two replicas by default"
    );
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "haul");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["args"], serde_json::json!(["controller"]));
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    let env = c["env"].as_array().expect("env");
    let var = |name: &str| -> &Value {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("env {name} missing: {env:?}"))
    };
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The leader Lease lives in the pod's namespace, where the Role lets it.
    assert_eq!(
        var("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(var("HAUL_LEADER_ELECT")["value"], "true");
    assert_eq!(var("HAUL_WORK_DIR")["value"], "/var/lib/haul");
    assert_eq!(var("SHARED_RESOURCES_NAMESPACE")["value"], "haul");
    assert_eq!(var("ARGOCD_NAMESPACE")["value"], "argocd");
    assert_eq!(var("GITCLIENT_NAME")["value"], "haul");
    assert!(var("GITCLIENT_EMAIL")["value"].is_string());
    assert_eq!(var("RUST_LOG")["value"], "info");
    assert_eq!(var("HAUL_METRICS_ADDR")["value"], "0.0.0.0:9095");
    assert_eq!(var("AWS_REGION")["value"], "eu-central-1");

    assert_eq!(c["ports"][0]["containerPort"], 9095);
    assert_eq!(c["ports"][0]["name"], "http-metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http-metrics");

    // Writable paths are emptyDirs: the work dir and /tmp.
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    for (vol, path) in [("work", "/var/lib/haul"), ("tmp", "/tmp")] {
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == vol && m["mountPath"] == path),
            "{vol} not mounted at {path}: {mounts:?}"
        );
        let v = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == vol)
            .unwrap_or_else(|| panic!("volume {vol} missing"));
        assert!(v["emptyDir"].is_object(), "{vol} is not an emptyDir: {v}");
    }

    let svc = find(&d, "Service", "haul-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-metrics");
    let sm = find(&d, "ServiceMonitor", "haul");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    // Without leader election two replicas would both reconcile: refused at render time.
    let (ok, _, stderr) = helm(&[
        "template",
        "haul",
        "charts/haul",
        "--set",
        "controller.leaderElection.enabled=false",
    ]);
    assert!(!ok, "leader election off with 2 replicas rendered");
    assert!(stderr.contains("needs replicaCount: 1"), "{stderr}");
    template(
        "haul",
        &[
            "--set",
            "controller.leaderElection.enabled=false",
            "--set",
            "replicaCount=1",
        ],
    );

    // Metrics off: no Service, but the port (and the probes on it) stay.
    let d = docs(&template("haul", &["--set", "metrics.enabled=false"]));
    assert!(
        !d.iter()
            .any(|o| o["kind"] == "Service" && o["metadata"]["name"] == "haul-metrics")
    );
    assert!(!d.iter().any(|o| o["kind"] == "ServiceMonitor"));
    let c = &find(&d, "Deployment", "haul")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
}

fn b64(s: &Value) -> Vec<u8> {
    base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        s.as_str().expect("a base64 string"),
    )
    .expect("base64")
}

/// The webhook that records who created a Promotion: called through its Service for Promotion
/// CREATE only, with a certificate the chart generates that the API server can verify for the
/// Service's DNS name, mounted into the pods.
#[test]
fn webhook_records_the_creator_with_a_verifiable_certificate() {
    let d = docs(&template("haul-system", &[]));
    let config = find(&d, "MutatingWebhookConfiguration", "haul");
    let hook = &config["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(
        hook["rules"][0]["operations"],
        serde_json::json!(["CREATE"])
    );
    assert_eq!(
        hook["rules"][0]["resources"],
        serde_json::json!(["promotions"])
    );
    let service = &hook["clientConfig"]["service"];
    assert_eq!(service["name"], "haul-webhook");
    assert_eq!(service["namespace"], "haul-system");
    assert_eq!(service["path"], "/mutate-promotion");
    let svc = find(&d, "Service", "haul-webhook");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "https-webhook");

    // The certificate chains to the caBundle and names the Service as the API server dials it.
    let secret = find(&d, "Secret", "haul-webhook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["data"]["ca.crt"], hook["clientConfig"]["caBundle"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.crt");
    let crt = dir.path().join("tls.crt");
    std::fs::write(&ca, b64(&secret["data"]["ca.crt"])).expect("write");
    std::fs::write(&crt, b64(&secret["data"]["tls.crt"])).expect("write");
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-verify_hostname",
            "haul-webhook.haul-system.svc",
            "-CAfile",
        ])
        .arg(&ca)
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(
        verify.status.success(),
        "the webhook certificate does not verify for haul-webhook.haul-system.svc: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let key = String::from_utf8(b64(&secret["data"]["tls.key"])).expect("utf-8");
    assert!(key.contains("PRIVATE KEY"), "tls.key is no PEM key");

    // Every replica serves it: the Deployment mounts the Secret and points the binary at it.
    let pod = &find(&d, "Deployment", "haul")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let env = c["env"].as_array().expect("env");
    let var = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| &e["value"]);
    assert_eq!(
        var("HAUL_WEBHOOK_CERT_DIR"),
        Some(&Value::from("/etc/haul/webhook-tls"))
    );
    assert_eq!(var("HAUL_WEBHOOK_ADDR"), Some(&Value::from("0.0.0.0:9443")));
    assert!(
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "https-webhook" && p["containerPort"] == 9443)
    );
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "webhook-tls")
        .expect("webhook-tls volume");
    assert_eq!(volume["secret"]["secretName"], "haul-webhook-tls");

    // cert-manager: a Certificate for the same name, its CA injected, no chart-made Secret.
    let d = docs(&template(
        "haul-system",
        &["--set", "webhook.certificate.source=cert-manager"],
    ));
    let cert = find(&d, "Certificate", "haul-webhook");
    assert_eq!(cert["spec"]["secretName"], "haul-webhook-tls");
    assert!(
        cert["spec"]["dnsNames"]
            .as_array()
            .expect("dnsNames")
            .contains(&Value::from("haul-webhook.haul-system.svc"))
    );
    assert_eq!(
        find(&d, "MutatingWebhookConfiguration", "haul")["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "haul-system/haul-webhook"
    );
    assert!(!d.iter().any(|o| o["kind"] == "Secret"));

    // Off: no webhook anywhere.
    let d = docs(&template(
        "haul-system",
        &["--set", "webhook.enabled=false"],
    ));
    assert!(
        !d.iter()
            .any(|o| o["kind"] == "MutatingWebhookConfiguration")
    );
    let yaml = serde_json::to_string(&d).expect("json");
    assert!(
        !yaml.contains("HAUL_WEBHOOK"),
        "webhook env with webhook.enabled=false"
    );

    // A bad certificate source is refused with the value named.
    let (ok, _, stderr) = helm(&[
        "template",
        "haul",
        "charts/haul",
        "--set",
        "webhook.certificate.source=vault",
    ]);
    assert!(
        !ok && stderr.contains("webhook.certificate.source must be helm, cert-manager or secret"),
        "{stderr}"
    );
}

/// The creator record cannot be forged or rewritten: the policy compares it with the requester,
/// and only the controller's ServiceAccount of this release may claim `controller:`.
#[test]
fn create_actor_policy_guards_the_record() {
    let d = docs(&template("haul-system", &[]));
    let p = find(&d, "ValidatingAdmissionPolicy", "haul-create-actor");
    let rules = &p["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["operations"], serde_json::json!(["CREATE", "UPDATE"]));
    assert_eq!(rules["resources"], serde_json::json!(["promotions"]));
    let controller = p["spec"]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "controller")
        .expect("controller variable");
    assert_eq!(
        controller["expression"].as_str().map(str::trim),
        Some("'system:serviceaccount:haul-system:haul'")
    );
    // The same identity, readable without parsing CEL: the controller compares it with its own.
    assert_eq!(
        p["metadata"]["annotations"]["haul.kargo.akuity.io/controller-username"],
        "system:serviceaccount:haul-system:haul"
    );
    let b = find(&d, "ValidatingAdmissionPolicyBinding", "haul-create-actor");
    assert_eq!(b["spec"]["policyName"], "haul-create-actor");
}

#[test]
fn receivers_add_a_port_a_service_an_ingress_and_warehouse_patch() {
    let off = docs(&template("haul", &[]));
    let cr = find(&off, "ClusterRole", "haul-controller");
    let patch = (
        "kargo.akuity.io".to_string(),
        "warehouses".to_string(),
        "patch".to_string(),
    );
    let patch_promotions = (
        "kargo.akuity.io".to_string(),
        "promotions".to_string(),
        "patch".to_string(),
    );
    assert!(!triples(cr).contains(&patch));
    assert!(!triples(cr).contains(&patch_promotions));
    let on = docs(&template(
        "haul",
        &[
            "--set",
            "receivers.enabled=true",
            "--set",
            "receivers.ingress.enabled=true",
            "--set",
            "receivers.ingress.host=hooks.example.com",
            "--set",
            "receivers.ingress.className=nginx",
        ],
    ));
    let on_rules = triples(find(&on, "ClusterRole", "haul-controller"));
    assert!(on_rules.contains(&patch) && on_rules.contains(&patch_promotions));
    let svc = find(&on, "Service", "haul-receivers");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-receivers");
    let ing = find(&on, "Ingress", "haul-receivers");
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["rules"][0]["host"], "hooks.example.com");
    let dep = find(&on, "Deployment", "haul");
    let env = &dep["spec"]["template"]["spec"]["containers"][0]["env"];
    let var = |n: &str| {
        env.as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == n))
            .map(|v| v["value"].clone())
    };
    assert_eq!(var("HAUL_RECEIVERS_ADDR"), Some("0.0.0.0:8081".into()));
    assert_eq!(
        var("HAUL_RECEIVERS_BASE_URL"),
        Some("https://hooks.example.com".into())
    );
}

/// Kargo's sharding: one more Deployment per `shards` entry, each with its shard name, a pod
/// selector of its own (the main Deployment and the Services do not select it) and the
/// restricted pod; the controller may relabel Promotions (handing one to its Stage's shard).
#[test]
fn shards_deploy_one_controller_each() {
    let d = docs(&template(
        "haul",
        &[
            "--set",
            "shards[0].name=eu",
            "--set",
            "shards[0].replicaCount=1",
            "--set",
            "shards[1].name=us",
        ],
    ));
    let env_of = |dep: &Value, n: &str| {
        dep["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == n))
            .map(|v| v["value"].clone())
    };
    let main = find(&d, "Deployment", "haul");
    assert_eq!(
        env_of(main, "SHARD_NAME"),
        None,
        "the main one is the default"
    );
    let main_selector = &main["spec"]["selector"]["matchLabels"];
    for (shard, replicas) in [("eu", 1), ("us", 2)] {
        let dep = find(&d, "Deployment", &format!("haul-shard-{shard}"));
        assert_eq!(dep["spec"]["replicas"], replicas);
        assert_eq!(env_of(dep, "SHARD_NAME"), Some(shard.into()));
        assert_eq!(env_of(dep, "IS_DEFAULT_CONTROLLER"), None);
        // Only the main Deployment serves the receivers and the webhook.
        assert_eq!(env_of(dep, "HAUL_RECEIVERS_ADDR"), Some("off".into()));
        assert_eq!(env_of(dep, "HAUL_WEBHOOK_CERT_DIR"), None);
        let selector = &dep["spec"]["selector"]["matchLabels"];
        assert_ne!(selector, main_selector);
        let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector.as_object().expect("selector") {
            assert_eq!(&pod_labels[k], v, "its pods match its selector");
        }
        assert!(
            main_selector
                .as_object()
                .expect("selector")
                .iter()
                .any(|(k, v)| &pod_labels[k] != v),
            "the main Deployment's selector must not match the {shard} pods"
        );
        let pod = &dep["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    }
    assert!(d.iter().any(|o| o["kind"] == "PodDisruptionBudget"
        && o["metadata"]["name"] == "haul-shard-us"));
    let patch_promotions = (
        "kargo.akuity.io".to_string(),
        "promotions".to_string(),
        "patch".to_string(),
    );
    assert!(triples(find(&d, "ClusterRole", "haul-controller")).contains(&patch_promotions));

    // Kargo's values for a release that runs one shard.
    let one = docs(&template(
        "haul",
        &[
            "--set",
            "controller.shardName=eu",
            "--set",
            "controller.isDefault=true",
        ],
    ));
    let dep = find(&one, "Deployment", "haul");
    assert_eq!(env_of(dep, "SHARD_NAME"), Some("eu".into()));
    assert_eq!(env_of(dep, "IS_DEFAULT_CONTROLLER"), Some("true".into()));

    for (bad, says) in [
        ("shards[0].name=-x", "must be a label value"),
        ("shards[0].replicaCount=1", "shards[].name is required"),
    ] {
        let (ok, _, stderr) = helm(&["template", "haul", "charts/haul", "--set", bad]);
        assert!(!ok && stderr.contains(says), "{bad}: {stderr}");
    }
}
