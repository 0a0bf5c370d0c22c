//! Who may promote where, decided by the real kube-apiserver: the chart's ValidatingAdmissionPolicies
//! (rendered by the real helm) check the `promote` verb on the Stage for every Promotion created
//! and every Freight approval, against RBAC Roles bound to users who authenticate with client
//! certificates - "developers promote to dev and uat, release managers to prod". The chart's
//! mutating webhook, served by a real `haul controller` process on loopback, records who created
//! each Promotion.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::helm::render;
use support::{Outcome, cp, kubectl, kubectl_as, kubectl_stdin, merge_patch_status, namespace};

/// Applies `objects` as the admin (a v1 List, so one kubectl call).
fn apply(objects: Vec<Value>, what: &str) -> Outcome {
    assert!(!objects.is_empty(), "{what}: nothing to apply");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success(what)
}

struct Users {
    alice: PathBuf,
    bob: PathBuf,
    carol: PathBuf,
}

/// Once per test binary: the chart's admission policies and user ClusterRoles are installed and
/// the policies are in force; alice (group developers), bob (release-managers) and carol
/// (auditors) have client-certificate kubeconfigs.
fn setup() -> &'static Users {
    static SETUP: OnceLock<Users> = OnceLock::new();
    SETUP.get_or_init(|| {
        let docs = render("haul", &[]);
        let policies: Vec<Value> = docs
            .iter()
            .filter(|d| {
                matches!(
                    d["kind"].as_str(),
                    Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding")
                )
            })
            .cloned()
            .collect();
        assert_eq!(
            policies.len(),
            6,
            "three policies and three bindings expected"
        );
        apply(policies, "apply the admission policies");
        install_webhook(&docs);
        let user_roles: Vec<Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "ClusterRole"
                    && matches!(
                        d["metadata"]["name"].as_str(),
                        Some("haul-viewer" | "haul-promoter")
                    )
            })
            .cloned()
            .collect();
        apply(user_roles, "apply haul-viewer and haul-promoter");

        let kc = |user: &str, group: &str| {
            cp().user_kubeconfig(user, Some(group))
                .unwrap_or_else(|e| panic!("kubeconfig for {user}: {e}"))
        };
        let users = Users {
            alice: kc("alice", "developers"),
            bob: kc("bob", "release-managers"),
            carol: kc("carol", "auditors"),
        };
        wait_until_policies_are_in_force();
        users
    })
}

/// Serves the chart's mutating webhook from a `haul controller` process, as every replica does,
/// and installs the chart's MutatingWebhookConfiguration pointed at it on loopback (the test API
/// server cannot reach a Service). The process stays a standby — a Lease held by another replica
/// — so it reconciles nothing here; the webhook does not need the lease.
fn install_webhook(docs: &[Value]) {
    static WEBHOOK: OnceLock<support::ControllerProcess> = OnceLock::new();
    let dir = support::installed::webhook_cert_dir();
    let port = support::free_port();
    let now = String::from_utf8(
        std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
            .output()
            .expect("date")
            .stdout,
    )
    .expect("utf-8");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "haul-controller", "namespace": "default"},
        "spec": {"holderIdentity": "another-replica", "leaseDurationSeconds": 86400,
                 "acquireTime": now.trim(), "renewTime": now.trim()}
    });
    apply(vec![lease], "a Lease held by another replica");
    WEBHOOK.get_or_init(|| {
        support::ControllerProcess::start_with_env(
            &cp().dir().join("webhook-work"),
            &[
                ("HAUL_WEBHOOK_ADDR", &format!("127.0.0.1:{port}")),
                ("HAUL_WEBHOOK_CERT_DIR", &dir.to_string_lossy()),
                ("POD_NAMESPACE", "default"),
            ],
        )
    });
    let mut config = docs
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .cloned()
        .expect("the chart renders a MutatingWebhookConfiguration");
    let ca = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        cp().ca_cert_pem(),
    );
    let path = config["webhooks"][0]["clientConfig"]["service"]["path"].clone();
    config["webhooks"][0]["clientConfig"] = json!({
        "url": format!("https://127.0.0.1:{port}{}", path.as_str().expect("path")),
        "caBundle": ca,
    });
    apply(vec![config], "the MutatingWebhookConfiguration");

    // In force once a Promotion the admin creates comes back with its creator recorded.
    let ns = namespace("authz-webhook-probe");
    stages_and_freight(&ns);
    let mut n = 0;
    support::wait_for(30, "the webhook to record creators", || {
        n += 1;
        let name = format!("probe-{n}");
        let out = kubectl_stdin(&["create", "-f", "-"], &promotion_yaml(&ns, &name, "dev"));
        if !out.ok {
            return None;
        }
        let p = support::get_json("promotion", &name, &ns)?;
        actor_of(&p).starts_with("kubernetes:").then_some(())
    });
}

fn actor_of(p: &Value) -> String {
    p["metadata"]["annotations"]["kargo.akuity.io/create-actor"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Policy changes reach the admission plugin asynchronously. A user who may create Promotions
/// and patch Freight status but promote nowhere tries both until the policies refuse him.
fn wait_until_policies_are_in_force() {
    let ns = namespace("authz-probe");
    stages_and_freight(&ns);
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "probe", "namespace": ns},
        "rules": [
            {"apiGroups": ["kargo.akuity.io"], "resources": ["promotions"], "verbs": ["create"]},
            {"apiGroups": ["kargo.akuity.io"], "resources": ["freights/status"], "verbs": ["get", "patch"]},
        ]
    });
    let binding = role_binding(&ns, "probe", "Role", "probe", "User", "probe");
    apply(vec![role, binding], "probe RBAC");
    let probe = cp()
        .user_kubeconfig("probe", None)
        .expect("probe kubeconfig");

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let mut promotion_denied = false;
    let mut approval_denied = false;
    while !(promotion_denied && approval_denied) {
        n += 1;
        if !promotion_denied {
            let name = format!("probe-{n}");
            let out = create_promotion(&probe, &ns, &name, "prod");
            if out.stderr.contains("may not promote to Stage prod") {
                promotion_denied = true;
            } else if out.ok {
                kubectl(&["delete", "promotion", &name, "-n", &ns]).success("delete probe");
            }
        }
        if !approval_denied {
            let out = approve(&probe, &ns, "prod");
            if out.stderr.contains("may not approve Freight") {
                approval_denied = true;
            } else if out.ok {
                merge_patch_status("freight", "f1", &ns, r#"{"status":{"approvedFor":null}}"#)
                    .success("undo probe approval");
            }
        }
        assert!(
            Instant::now() < deadline,
            "the admission policies were not in force after 30 s (promotion denied: \
             {promotion_denied}, approval denied: {approval_denied})"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn role_binding(
    ns: &str,
    name: &str,
    role_kind: &str,
    role: &str,
    kind: &str,
    subject: &str,
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    })
}

/// dev ← Warehouse, uat ← dev, prod ← uat, and one Freight `f1`.
fn stages_and_freight(ns: &str) {
    let stage = |name: &str, sources: Value| {
        json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": "my-app"}, "sources": sources}
            ]}
        })
    };
    let freight = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
        "metadata": {"name": "f1", "namespace": ns},
        "origin": {"kind": "Warehouse", "name": "my-app"},
        "images": [{
            "repoURL": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app",
            "tag": "1.0.0", "digest": "sha256:aaaa"
        }]
    });
    apply(
        vec![
            stage("dev", json!({"direct": true})),
            stage("uat", json!({"stages": ["dev"]})),
            stage("prod", json!({"stages": ["uat"]})),
            freight,
        ],
        "stages and freight",
    );
}

/// A fresh namespace with [`stages_and_freight`] and the [`team`].
fn team_project(prefix: &str) -> String {
    let ns = namespace(prefix);
    stages_and_freight(&ns);
    team(&ns);
    ns
}

/// The team of docs/authorization.md in namespace `ns`: developers promote to dev and uat,
/// release managers to prod, auditors read (the chart's haul-viewer).
fn team(ns: &str) {
    let promoter = |name: &str, stages: &[&str]| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": ns},
            "rules": [
                {"apiGroups": ["kargo.akuity.io"], "resources": ["stages"],
                 "resourceNames": stages, "verbs": ["promote"]},
                {"apiGroups": ["kargo.akuity.io"], "resources": ["stages"], "verbs": ["get"]},
                {"apiGroups": ["kargo.akuity.io"], "resources": ["promotions"], "verbs": ["create"]},
                {"apiGroups": ["kargo.akuity.io"], "resources": ["freights/status"], "verbs": ["get", "patch"]},
            ]
        })
    };
    apply(
        vec![
            promoter("dev-uat-promoter", &["dev", "uat"]),
            promoter("prod-promoter", &["prod"]),
            role_binding(
                ns,
                "developers",
                "Role",
                "dev-uat-promoter",
                "Group",
                "developers",
            ),
            role_binding(
                ns,
                "release-managers",
                "Role",
                "prod-promoter",
                "Group",
                "release-managers",
            ),
            role_binding(
                ns,
                "auditors",
                "ClusterRole",
                "haul-viewer",
                "Group",
                "auditors",
            ),
        ],
        "team RBAC",
    );
}

/// `kubectl auth can-i <verb> <resource>` as `kc` in `ns`, where `resource` may be
/// `kind/name` or `kind:subresource` (kubectl's own `kind/name` syntax has no subresource).
fn can_i(kc: &Path, ns: &str, verb: &str, resource: &str) -> bool {
    let (resource, sub) = match resource.split_once(':') {
        Some((r, s)) => (r, Some(format!("--subresource={s}"))),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "-n", ns];
    if let Some(s) = &sub {
        args.push(s);
    }
    let out = kubectl_as(kc, &args, None);
    out.stdout.trim() == "yes"
}

/// Waits (bounded) until RBAC lets `kc` do `verb resource` in `ns`; RBAC changes reach the
/// authorizer through an informer.
fn wait_can_i(kc: &Path, ns: &str, verb: &str, resource: &str) {
    support::wait_for(10, &format!("RBAC: {verb} {resource} in {ns}"), || {
        can_i(kc, ns, verb, resource).then_some(())
    });
}

fn promotion_yaml(ns: &str, name: &str, stage: &str) -> String {
    promotion_with_actor(ns, name, stage, None)
}

fn promotion_with_actor(ns: &str, name: &str, stage: &str, actor: Option<&str>) -> String {
    let mut p = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"stage": stage, "freight": "f1", "steps": [{"uses": "git-clone"}]}
    });
    if let Some(a) = actor {
        p["metadata"]["annotations"] = json!({"kargo.akuity.io/create-actor": a});
    }
    p.to_string()
}

fn create_promotion(kc: &Path, ns: &str, name: &str, stage: &str) -> Outcome {
    kubectl_as(
        kc,
        &["create", "-f", "-"],
        Some(&promotion_yaml(ns, name, stage)),
    )
}

/// Approves Freight f1 for `stages` the way `kargo approve` does: a patch of the status subresource.
fn approve(kc: &Path, ns: &str, stages: &str) -> Outcome {
    let approved: serde_json::Map<String, Value> = stages
        .split(',')
        .map(|s| (s.to_string(), json!({"approvedAt": "2026-01-01T00:00:00Z"})))
        .collect();
    let patch = json!({"status": {"approvedFor": approved}}).to_string();
    kubectl_as(
        kc,
        &[
            "patch",
            "freight",
            "f1",
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ],
        None,
    )
}

fn promotions(ns: &str) -> Vec<String> {
    let out = kubectl(&["get", "promotions", "-n", ns, "-o", "name"]).success("list promotions");
    let mut names: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    names.sort();
    names
}

fn approved_for(ns: &str) -> Vec<String> {
    let f = support::get_json("freight", "f1", ns).expect("freight f1");
    let mut keys: Vec<String> = f["status"]["approvedFor"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[test]
fn promote_verb_decides_who_promotes_to_which_stage() {
    let u = setup();
    let ns = team_project("authz-promote");
    wait_can_i(&u.alice, &ns, "promote", "stages/dev");
    wait_can_i(&u.bob, &ns, "promote", "stages/prod");

    // alice may create Promotions, but not promote to prod: the API server refuses, and says
    // which Stage, which verb and which user.
    create_promotion(&u.alice, &ns, "alice-to-prod", "prod").refused_with(
        "alice promoting to prod",
        &[
            "user alice may not promote to Stage prod",
            r#"needs verb "promote" on stages.kargo.akuity.io/prod"#,
            "haul-promote-stage",
        ],
    );
    assert_eq!(
        promotions(&ns),
        Vec::<String>::new(),
        "a refused Promotion was stored"
    );

    create_promotion(&u.alice, &ns, "alice-to-dev", "dev").success("alice promotes to dev");
    create_promotion(&u.alice, &ns, "alice-to-uat", "uat").success("alice promotes to uat");
    create_promotion(&u.bob, &ns, "bob-to-prod", "prod").success("bob promotes to prod");
    // bob's grant is prod only.
    let out = create_promotion(&u.bob, &ns, "bob-to-dev", "dev");
    assert!(
        out.stderr.contains("user bob may not promote to Stage dev"),
        "{}",
        out.stderr
    );

    assert_eq!(
        promotions(&ns),
        [
            "promotion.kargo.akuity.io/alice-to-dev",
            "promotion.kargo.akuity.io/alice-to-uat",
            "promotion.kargo.akuity.io/bob-to-prod",
        ]
    );
}

#[test]
fn approving_freight_for_a_stage_needs_promote_on_it() {
    let u = setup();
    let ns = team_project("authz-approve");
    wait_can_i(&u.alice, &ns, "patch", "freights:status");
    wait_can_i(&u.bob, &ns, "patch", "freights:status");

    approve(&u.alice, &ns, "prod").refused_with(
        "alice approving f1 for prod",
        &[
            "user alice may not approve Freight f1 for Stage prod",
            r#"needs verb "promote" on stages.kargo.akuity.io/prod"#,
        ],
    );
    assert_eq!(approved_for(&ns), Vec::<String>::new());

    approve(&u.alice, &ns, "uat").success("alice approves f1 for uat");
    approve(&u.bob, &ns, "prod").success("bob approves f1 for prod");
    assert_eq!(approved_for(&ns), ["prod", "uat"]);

    // Someone who may promote only some Stages approves one per request (see the policy).
    let out = approve(&u.alice, &ns, "dev,qa");
    assert!(!out.ok, "alice approved two Stages at once");
    assert!(
        out.stderr.contains("one Stage per request"),
        "{}",
        out.stderr
    );
    approve(&u.alice, &ns, "dev").success("alice approves f1 for dev");
    assert_eq!(approved_for(&ns), ["dev", "prod", "uat"]);
}

#[test]
fn viewer_reads_everything_and_creates_nothing() {
    let u = setup();
    let ns = team_project("authz-view");
    create_promotion(cp().kubeconfig(), &ns, "by-admin", "dev").success("admin promotes");
    wait_can_i(&u.carol, &ns, "list", "stages.kargo.akuity.io");

    for kind in [
        "stages",
        "freights",
        "promotions",
        "warehouses",
        "promotiontasks",
        "projectconfigs",
    ] {
        kubectl_as(&u.carol, &["get", kind, "-n", &ns], None)
            .success(&format!("carol lists {kind}"));
    }
    let out = kubectl_as(
        &u.carol,
        &["get", "stage", "prod", "-n", &ns, "-o", "name"],
        None,
    )
    .success("carol gets stage prod");
    assert_eq!(out.stdout.trim(), "stage.kargo.akuity.io/prod");
    kubectl_as(&u.carol, &["get", "promotion", "by-admin", "-n", &ns], None)
        .success("carol gets a promotion");

    let out = create_promotion(&u.carol, &ns, "carol-to-dev", "dev");
    assert!(!out.ok, "carol created a Promotion");
    assert!(
        out.stderr.contains("cannot create resource"),
        "{}",
        out.stderr
    );
    let out = approve(&u.carol, &ns, "dev");
    assert!(!out.ok, "carol approved Freight");
    assert!(out.stderr.contains("forbidden"), "{}", out.stderr);
    for (verb, resource) in [
        ("create", "promotions"),
        ("create", "freights"),
        ("create", "stages"),
        ("delete", "promotions"),
        ("patch", "freights:status"),
        ("promote", "stages/dev"),
    ] {
        assert!(
            !can_i(&u.carol, &ns, verb, resource),
            "carol can {verb} {resource}"
        );
    }
    assert!(
        can_i(&u.carol, &ns, "watch", "promotions"),
        "carol cannot watch promotions"
    );
    assert_eq!(promotions(&ns), ["promotion.kargo.akuity.io/by-admin"]);
    assert_eq!(approved_for(&ns), Vec::<String>::new());
}

/// The controller's auto-promotions pass the same check: its ClusterRole holds `promote`. A
/// ServiceAccount that may only create Promotions is refused like a person.
#[test]
fn controller_service_account_promotes_through_the_same_check() {
    setup();
    let ns = namespace("authz-controller");
    stages_and_freight(&ns);
    let controller_rbac: Vec<Value> = render(&ns, &[])
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding")
            ) && d["metadata"]["name"] == "haul-controller"
        })
        .collect();
    assert_eq!(controller_rbac.len(), 2);
    apply(controller_rbac, "controller ClusterRole and binding");
    let intruder = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "create-promotions", "namespace": ns},
        "rules": [{"apiGroups": ["kargo.akuity.io"], "resources": ["promotions"], "verbs": ["create"]}]
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "intruder", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "create-promotions"},
        "subjects": [{"kind": "ServiceAccount", "name": "intruder", "namespace": ns}],
    });
    apply(vec![intruder, binding], "intruder RBAC");

    let controller = format!("--as=system:serviceaccount:{ns}:haul");
    let other = format!("--as=system:serviceaccount:{ns}:intruder");
    for who in [&controller, &other] {
        support::wait_for(10, "RBAC for the service accounts", || {
            kubectl(&[who, "auth", "can-i", "create", "promotions", "-n", &ns])
                .ok
                .then_some(())
        });
    }
    kubectl_stdin(
        &[&controller, "create", "-f", "-"],
        &promotion_yaml(&ns, "auto-prod", "prod"),
    )
    .success("the controller's ServiceAccount auto-promotes to prod");
    let out = kubectl_stdin(
        &[&other, "create", "-f", "-"],
        &promotion_yaml(&ns, "sneaky-prod", "prod"),
    );
    assert!(!out.ok, "a ServiceAccount without promote promoted to prod");
    assert!(
        out.stderr.contains(&format!(
            "user system:serviceaccount:{ns}:intruder may not promote to Stage prod"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(promotions(&ns), ["promotion.kargo.akuity.io/auto-prod"]);
}

/// Who promoted is recorded by the API server's admission chain, whatever the client: plain
/// kubectl gets `kubernetes:<user>`; a forged name is overwritten; claiming to be the controller
/// is refused unless the request comes from the controller's ServiceAccount; and the record
/// cannot be rewritten afterwards, not even by a promoter allowed to patch (abort) Promotions.
#[test]
fn who_promoted_is_recorded_and_cannot_be_forged() {
    let users = setup();
    let ns = team_project("authz-actor");
    // haul-promoter (which may patch Promotions, for `haul abort`) for the release managers.
    apply(
        vec![role_binding(
            &ns,
            "release-managers-all",
            "ClusterRole",
            "haul-promoter",
            "Group",
            "release-managers",
        )],
        "haul-promoter for release managers",
    );
    wait_can_i(&users.alice, &ns, "create", "promotions");
    wait_can_i(&users.bob, &ns, "patch", "promotions");

    create_promotion(&users.alice, &ns, "plain", "dev").success("alice, plain kubectl");
    let p = support::get_json("promotion", "plain", &ns).expect("promotion");
    assert_eq!(actor_of(&p), "kubernetes:alice", "{p:#}");

    kubectl_as(
        &users.alice,
        &["create", "-f", "-"],
        Some(&promotion_with_actor(
            &ns,
            "forged",
            "uat",
            Some("kubernetes:bob"),
        )),
    )
    .success("alice, claiming to be bob");
    let p = support::get_json("promotion", "forged", &ns).expect("promotion");
    assert_eq!(
        actor_of(&p),
        "kubernetes:alice",
        "a forged creator was kept: {p:#}"
    );

    let out = kubectl_as(
        &users.alice,
        &["create", "-f", "-"],
        Some(&promotion_with_actor(
            &ns,
            "as-controller",
            "dev",
            Some("controller:haul-controller"),
        )),
    );
    assert!(!out.ok, "alice passed as the controller");
    assert!(
        out.stderr.contains(
            "annotation kargo.akuity.io/create-actor is \"controller:haul-controller\" but the \
             request comes from user alice"
        ),
        "{}",
        out.stderr
    );

    // The controller's ServiceAccount (the chart's, bound to the chart's controller ClusterRole
    // here) records its auto-promotions as its own.
    let controller_role = render("haul", &[])
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "haul-controller")
        .expect("controller ClusterRole");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "haul-controller", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "haul-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": "haul", "namespace": "haul"}],
    });
    apply(vec![controller_role, binding], "controller RBAC");
    let sa = "--as=system:serviceaccount:haul:haul";
    support::wait_for(10, "RBAC for the controller", || {
        kubectl(&[sa, "auth", "can-i", "create", "promotions", "-n", &ns])
            .ok
            .then_some(())
    });
    kubectl_stdin(
        &[sa, "create", "-f", "-"],
        &promotion_with_actor(&ns, "auto", "dev", Some("controller:haul-controller")),
    )
    .success("the controller's auto-promotion");
    let p = support::get_json("promotion", "auto", &ns).expect("promotion");
    assert_eq!(actor_of(&p), "controller:haul-controller", "{p:#}");

    // A promoter may abort (patch an annotation) but not rewrite who promoted.
    let out = kubectl_as(
        &users.bob,
        &[
            "annotate",
            "promotion",
            "plain",
            "-n",
            &ns,
            "--overwrite",
            "kargo.akuity.io/create-actor=kubernetes:bob",
        ],
        None,
    );
    assert!(!out.ok, "bob rewrote who promoted");
    assert!(
        out.stderr.contains(
            "records who created it (\"kubernetes:alice\") and cannot be changed (user bob"
        ),
        "{}",
        out.stderr
    );
    kubectl_as(
        &users.bob,
        &[
            "annotate",
            "promotion",
            "plain",
            "-n",
            &ns,
            r#"kargo.akuity.io/abort={"action":"terminate"}"#,
        ],
        None,
    )
    .success("bob aborts alice's Promotion");
    let p = support::get_json("promotion", "plain", &ns).expect("promotion");
    assert_eq!(actor_of(&p), "kubernetes:alice", "{p:#}");
}
