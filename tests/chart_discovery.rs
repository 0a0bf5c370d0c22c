//! Chart subscriptions end to end: charts packaged and pushed with the real helm to the
//! distribution registry (anonymous and htpasswd) and to a classic repository (`index.yaml`
//! served from loopback), discovered by a real `haul controller` into Freight.

mod support;

use sha1::{Digest as _, Sha1};
use support::charts::{HttpRepo, push_oci};
use support::services::services;
use support::{
    ControllerProcess, freight_list, get_json, kubectl, kubectl_stdin, namespace, wait_for,
    warehouse_condition,
};

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        std::sync::Mutex::new(ControllerProcess::start(
            &support::cp().dir().join("work-charts"),
        ))
    })
}

fn warehouse(ns: &str, name: &str, subs: &str, extra: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  interval: 10m\n{extra}  subscriptions:\n{subs}"
    )
}

/// Waits until the Warehouse's Healthy condition has `reason` and returns its message.
fn wait_unhealthy(ns: &str, name: &str, reason: &str) -> String {
    wait_for(60, &format!("{name}: Healthy reason {reason}"), || {
        let (status, r, message) = warehouse_condition(ns, name, "Healthy")?;
        (status == "False" && r == reason).then_some(message)
    })
}

fn sha1_hex(s: &str) -> String {
    Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn temp_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn oci_chart_versions_become_freight_newest_first_within_the_constraint() {
    let _ = controller();
    let ns = namespace("chart-oci");
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();
    let home = temp_home();
    push_oci(
        home.path(),
        &reg,
        &ns,
        "app",
        &["0.1.0", "0.2.0", "0.10.0", "1.0.0"],
        None,
    );
    let url = format!("oci://{reg}/{ns}/app");
    let subs = format!(
        "  - chart:\n      repoURL: {url}\n      semverConstraint: '<1.0.0'\n      discoveryLimit: 2\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "app", &subs, "")).success("warehouse");

    let f = wait_for(60, "Freight with the chart", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(f["charts"][0]["repoURL"], url.as_str());
    assert_eq!(f["charts"][0]["version"], "0.10.0");
    assert!(f["charts"][0].get("name").is_none(), "{f}");
    // Kargo's ID: sha1("Warehouse/<name>:" + NormalizeChart(repoURL) + ":" + version).
    let expected = sha1_hex(&format!("Warehouse/app:{reg}/{ns}/app:0.10.0"));
    assert_eq!(f["metadata"]["name"], expected.as_str());

    let w = get_json("warehouse", "app", &ns).expect("warehouse");
    let charts = &w["status"]["discoveredArtifacts"]["charts"];
    assert_eq!(
        charts[0]["versions"],
        serde_json::json!(["0.10.0", "0.2.0"])
    );
    assert_eq!(charts[0]["semverConstraint"], "<1.0.0");
    assert_eq!(w["status"]["lastFreightID"], expected.as_str());
}

#[test]
fn oci_chart_behind_basic_auth_needs_a_helm_secret() {
    let _ = controller();
    let ns = namespace("chart-auth");
    let s = services();
    let reg = s.var("HAUL_TEST_REGISTRY_AUTH").to_string();
    let (user, password) = (
        s.var("HAUL_TEST_REGISTRY_USER"),
        s.var("HAUL_TEST_REGISTRY_PASSWORD"),
    );
    let home = temp_home();
    push_oci(
        home.path(),
        &reg,
        &ns,
        "db",
        &["3.1.0"],
        Some((user, password)),
    );
    let url = format!("oci://{reg}/{ns}/db");
    let subs = format!("  - name: db\n    chart:\n      repoURL: {url}\n");
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "db", &subs, "")).success("warehouse");

    // No Secret: the registry's 401 is reported, naming the subscription.
    let message = wait_unhealthy(&ns, "db", "DiscoveryFailed");
    assert!(
        message.contains(&format!("chart subscription \"db\" ({url})"))
            && message.contains("authentication"),
        "{message}"
    );

    // A Secret as Kargo uses it: cred-type helm, repoURL with oci://.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/cred-type: helm\nstringData:\n  repoURL: {url}\n  username: {user}\n  password: {password}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    kubectl(&[
        "annotate",
        "warehouse",
        "db",
        "-n",
        &ns,
        "--overwrite",
        "kargo.akuity.io/refresh=1",
    ])
    .success("refresh");
    let f = wait_for(60, "Freight with the authenticated chart", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(f["charts"][0]["version"], "3.1.0");
    assert_eq!(f["charts"][0]["subscriptionName"], "db");
}

#[test]
fn classic_repository_charts_and_criteria() {
    let _ = controller();
    let ns = namespace("chart-http");
    let home = temp_home();
    let repo = HttpRepo::start(&home.path().join("repo"), Some(("charts", "s3cret")));
    repo.publish(home.path(), "web", &["1.0.0", "1.1.0", "2.0.0-rc.1"]);
    repo.publish(home.path(), "other", &["9.0.0"]);
    let url = format!("{}/", repo.url);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: charts\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/cred-type: helm\nstringData:\n  repoURL: {url}\n  username: charts\n  password: s3cret\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    let subs = format!(
        "  - chart:\n      repoURL: {url}\n      name: web\n      semverConstraint: ^1.0.0\n"
    );
    let criteria = format!(
        "  freightCreationCriteria:\n    expression: chartFrom('{url}', 'web').Version startsWith '1.'\n"
    );
    kubectl_stdin(
        &["apply", "-f", "-"],
        &warehouse(&ns, "web", &subs, &criteria),
    )
    .success("warehouse");

    let f = wait_for(60, "Freight with the classic chart", || {
        freight_list(&ns).into_iter().next()
    });
    assert_eq!(f["charts"][0]["name"], "web");
    assert_eq!(f["charts"][0]["version"], "1.1.0");
    // Go's path.Join cleans "http://" to "http:/" inside Kargo's hash input.
    let expected = sha1_hex(&format!(
        "Warehouse/web:{}/web:1.1.0",
        repo.url.replacen("http://", "http:/", 1)
    ));
    assert_eq!(f["metadata"]["name"], expected.as_str());
    let (status, reason, _) = warehouse_condition(&ns, "web", "FreightCreationCriteriaSatisfied")
        .expect("criteria condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "CriteriaSatisfied")
    );
}

#[test]
fn bad_chart_subscriptions_say_what_is_wrong() {
    let _ = controller();
    let ns = namespace("chart-bad");
    let home = temp_home();
    let repo = HttpRepo::start(&home.path().join("repo"), None);
    repo.publish(home.path(), "web", &["1.0.0"]);
    let broken = HttpRepo::start(&home.path().join("broken"), None);
    std::fs::write(broken.dir.join("index.yaml"), "entries: [web: {").expect("index");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let reg = services().var("HAUL_TEST_REGISTRY").to_string();

    let cases: Vec<(&str, String, &str, Vec<String>)> = vec![
        (
            "missing-chart",
            format!("  - chart:\n      repoURL: {}\n      name: api\n", repo.url),
            "DiscoveryFailed",
            vec![
                format!("chart subscription {}", repo.url),
                format!("chart \"api\" not found in {}/index.yaml", repo.url),
            ],
        ),
        (
            "malformed",
            format!(
                "  - chart:\n      repoURL: {}\n      name: web\n",
                broken.url
            ),
            "DiscoveryFailed",
            vec![format!("malformed index.yaml at {}/index.yaml", broken.url)],
        ),
        (
            "unreachable",
            format!("  - chart:\n      repoURL: http://127.0.0.1:{closed}\n      name: web\n"),
            "DiscoveryFailed",
            vec![format!(
                "chart repository http://127.0.0.1:{closed} unreachable"
            )],
        ),
        (
            "no-repo",
            format!("  - chart:\n      repoURL: oci://{reg}/{ns}/nothing\n"),
            "DiscoveryFailed",
            vec![format!(
                "chart repository oci://{reg}/{ns}/nothing not found"
            )],
        ),
        (
            "nothing-matches",
            format!(
                "  - chart:\n      repoURL: {}\n      name: web\n      semverConstraint: '>=5'\n",
                repo.url
            ),
            "MissingArtifacts",
            vec!["found no version satisfying semverConstraint \">=5\"".to_string()],
        ),
    ];
    for (name, subs, _, _) in &cases {
        kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, name, subs, "")).success("warehouse");
    }
    for (name, _, reason, wants) in &cases {
        let message = wait_unhealthy(&ns, name, reason);
        for want in wants {
            assert!(
                message.contains(want.as_str()),
                "{name}: {want:?} in {message:?}"
            );
        }
    }

    // Spec problems are InvalidSpec on Ready, before any request.
    let subs = format!(
        "  - chart:\n      repoURL: {}\n      semverConstraint: '>>1'\n",
        repo.url
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse(&ns, "invalid", &subs, "")).success("apply");
    let message = wait_for(30, "InvalidSpec", || {
        let (status, reason, message) = warehouse_condition(&ns, "invalid", "Ready")?;
        (status == "False" && reason == "InvalidSpec").then_some(message)
    });
    assert!(
        message.contains("spec.subscriptions[0].chart.name: name is required")
            && message.contains("spec.subscriptions[0].chart.semverConstraint"),
        "{message}"
    );
    assert!(freight_list(&ns).is_empty());
}
