//! Signed commits and tags end to end: keys generated here (gpg, ssh-keygen), promotions run
//! by `haul run-local` and by a `haul controller` process pushing to the test git server over
//! HTTP, and `git verify-commit` / `verify-tag` in a fresh clone trusting only the public key.

mod support;

use std::path::Path;

use support::fixtures::{Stage, git_credentials_secret, promotion_yaml};
use support::gitops::{encoded_auth_url, seed_dev_overlay};
use support::run_local::run_steps;
use support::signing::{Verifier, gpg_key, indented, ssh_key};
use support::{ControllerProcess, get_json, git, kubectl_stdin, namespace, wait_for};

const KUSTOMIZATION: &str = "./src/apps/svc/env/dev/kustomization.yaml";

fn head(bare: &Path, branch: &str) -> String {
    git(bare, &["rev-parse", &format!("refs/heads/{branch}")])
        .trim()
        .to_string()
}

/// git-clone (with `clone_author` lines, if any), a file edit, git-commit (with
/// `commit_author` lines, if any), then `extra` steps.
fn steps(
    repo_url: &str,
    clone_author: &str,
    commit_author: &str,
    tag: &str,
    extra: &str,
) -> String {
    format!(
        r#"      - uses: git-clone
        config:
          repoURL: {repo_url}
          checkout:
          - branch: gitops
            path: ./src
{clone_author}      - uses: yaml-update
        config:
          path: {KUSTOMIZATION}
          updates:
          - key: images.0.newTag
            value: "{tag}"
      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: signed change {tag}
{commit_author}{extra}"#
    )
}

/// An `author:` block (indented for a step's config) with `key` as its signing key.
fn author_block(name: &str, email: &str, key: &str) -> String {
    format!(
        "          author:\n            name: {name}\n            email: {email}\n            signingKey: |\n{}",
        indented(key, 14)
    )
}

#[test]
fn run_local_signs_commits_and_tags_with_a_gpg_key_from_git_clone() {
    let key = gpg_key("Release Bot", "release-bot@example.com", "", "never");
    let (url, bare) = seed_dev_overlay("sign-gpg-local");
    let before = head(&bare, "gitops");
    let dir = tempfile::tempdir().expect("tempdir");
    let push = "      - uses: git-tag\n        config:\n          path: ./src\n          tag: v2\n          message: release 2\n      - uses: git-push\n        config:\n          path: ./src\n          tag: v2\n";
    let s = steps(
        &encoded_auth_url(&url),
        &author_block("Release Bot", "release-bot@example.com", &key.private),
        "",
        "2",
        push,
    );
    let out = run_steps(dir.path(), &s, "my-app", &dir.path().join("work"), None)
        .success("run-local with a GPG key");
    assert!(!out.stderr.contains("PRIVATE KEY"), "{}", out.stderr);

    let after = head(&bare, "gitops");
    assert_ne!(before, after, "the commit was pushed");
    let v = Verifier::new(&url, &key);
    let (ok, text) = v.verify("verify-commit", &after);
    assert!(ok, "verify-commit: {text}");
    assert!(text.contains("Good signature"), "{text}");
    assert_eq!(
        v.git(&["log", "-1", "--format=%an <%ae>", &after]).trim(),
        "Release Bot <release-bot@example.com>"
    );
    let (ok, text) = v.verify("verify-tag", "v2");
    assert!(ok, "verify-tag: {text}");
    assert_eq!(v.git(&["rev-list", "-n1", "v2"]).trim(), after);
    // The commit before it (pushed by the test, unsigned) does not verify: the check is real.
    let (ok, _) = v.verify("verify-commit", &before);
    assert!(!ok, "an unsigned commit must not verify");
}

#[test]
fn run_local_signs_a_commit_with_an_ssh_key_from_git_commit() {
    let key = ssh_key("ssh-bot@example.com");
    let other = ssh_key("someone-else@example.com");
    let (url, bare) = seed_dev_overlay("sign-ssh-local");
    let dir = tempfile::tempdir().expect("tempdir");
    let s = steps(
        &encoded_auth_url(&url),
        "",
        &author_block("SSH Bot", "ssh-bot@example.com", &key.private),
        "3",
        "      - uses: git-push\n        config:\n          path: ./src\n",
    );
    run_steps(dir.path(), &s, "my-app", &dir.path().join("work"), None)
        .success("run-local with an SSH key");
    let after = head(&bare, "gitops");
    let v = Verifier::new(&url, &key);
    let (ok, text) = v.verify("verify-commit", &after);
    assert!(ok, "verify-commit: {text}");
    assert!(text.contains("Good \"git\" signature"), "{text}");
    // Trusting another key only, the same commit fails verification.
    let (ok, _) = Verifier::new(&url, &other).verify("verify-commit", &after);
    assert!(!ok, "a commit verified against the wrong key");
}

#[test]
fn an_unusable_key_fails_the_step_before_anything_is_committed_or_pushed() {
    let protected = gpg_key("Locked", "locked@example.com", "s3cret-pass", "never");
    let expired = gpg_key("Old", "old@example.com", "", "seconds=1");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let public_only = gpg_key("Pub", "pub@example.com", "", "never").public;
    let cases: [(&str, String, &str); 4] = [
        (
            "garbage",
            "GARBAGE-KEY-MATERIAL not a key at all".into(),
            "neither",
        ),
        ("protected", protected.private.clone(), "passphrase"),
        ("expired", expired.private.clone(), "expired"),
        ("public", public_only, "public key"),
    ];
    let (url, bare) = seed_dev_overlay("sign-bad-keys");
    let before = head(&bare, "gitops");
    for (what, key, reason) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = steps(
            &encoded_auth_url(&url),
            "",
            &author_block("Bad", "bad@example.com", &key),
            "9",
            "      - uses: git-push\n        config:\n          path: ./src\n",
        );
        let out = run_steps(dir.path(), &s, "my-app", &dir.path().join("work"), None)
            .failure(&format!("run-local with a {what} key"));
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("config.author.signingKey") && text.contains(reason),
            "{what}: {text}"
        );
        assert!(!text.contains("GARBAGE-KEY-MATERIAL"), "{what}: {text}");
        // No line of the key's body appears.
        for line in key.lines().skip(2).filter(|l| l.len() > 20).take(3) {
            assert!(!text.contains(line), "{what}: key material in the output");
        }
        assert_eq!(head(&bare, "gitops"), before, "{what}: the remote changed");
        // Nothing was committed locally either.
        let wt = dir.path().join("work/src");
        if wt.exists() {
            let log = git(&wt, &["log", "--format=%s", "-1"]);
            assert!(!log.contains("signed change"), "{what}: {log}");
        }
    }
}

#[test]
fn a_controller_promotion_pushes_a_commit_signed_with_the_steps_key() {
    let key = ssh_key("promoter@example.com");
    let controller = ControllerProcess::start(&support::cp().dir().join("work-signing"));
    let ns = namespace("sign");
    let (url, bare) = seed_dev_overlay(&format!("{ns}-ctl"));
    let before = head(&bare, "gitops");
    let template = steps(
        &url,
        "",
        &author_block("Promoter", "promoter@example.com", &key.private),
        "4",
        "      - uses: git-push\n        config:\n          path: ./src\n",
    );
    let template = format!("      steps:\n{template}");
    let freight = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f4\n  namespace: {ns}\nalias: f4\norigin:\n  kind: Warehouse\n  name: w\nimages:\n- repoURL: my-app\n  tag: \"4\"\n  digest: sha256:4\n"
    );
    let stage = Stage {
        ns: &ns,
        name: "dev",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    let manifests = format!(
        "{}---\n{freight}---\n{stage}---\n{}",
        git_credentials_secret(&ns, "git-creds", &url),
        promotion_yaml(&ns, "p4", "dev", "f4")
    );
    kubectl_stdin(&["apply", "-f", "-"], &manifests).success("apply");
    let status = wait_for(120, "the Promotion to finish", || {
        let p = get_json("promotion", "p4", &ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored"]
            .contains(&phase)
            .then(|| p["status"].clone())
    });
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let after = head(&bare, "gitops");
    assert_ne!(before, after);
    let v = Verifier::new(&url, &key);
    let (ok, text) = v.verify("verify-commit", &after);
    assert!(ok, "verify-commit: {text}");
    assert_eq!(
        v.git(&["log", "-1", "--format=%an", &after]).trim(),
        "Promoter"
    );
    let log = controller.log_text();
    assert!(!log.contains("OPENSSH PRIVATE KEY"), "the key was logged");
}
