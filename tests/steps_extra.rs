//! The steps beyond the reference pipeline's, run as a user runs them: real Stage and Freight
//! files through `haul run-local`, against local git repositories and a loopback HTTP server.
//! git-tag and git-push `tag`, json-update, yaml-parse, json-parse, http and fail.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use support::Outcome as Run;
use support::git;
use support::run_local;

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

/// The steps with Freight of image ECR:1006, each run in a new work dir.
fn run_steps(dir: &Path, steps: &str, repo: Option<&Path>) -> Run {
    let work = dir.join(format!("work-{}", unique_suffix()));
    run_local::run_steps(dir, steps, ECR, &work, repo)
}

fn unique_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// A bare repository (and its seed) with `values.yaml` and `config.json` on main.
fn config_repo(dir: &Path) -> PathBuf {
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).expect("dirs");
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(
        seed.join("values.yaml"),
        "# chart values\nimage:\n  repository: my-app\n  tag: \"1006\"\nreplicas: 2\n",
    )
    .expect("write");
    std::fs::write(seed.join("config.json"), CONFIG_JSON).expect("write");
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "init"]);
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().expect("utf-8"),
            "config.git",
        ],
    );
    dir.join("config.git")
}

const CONFIG_JSON: &str = "{\n    \"app\": {\n        \"version\": \"1005\",\n        \"replicas\": 1\n    },\n    \"feature.flags\": { \"beta\": false }\n}\n";

#[test]
fn parse_update_commit_tag_and_push_a_release() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bare = config_repo(tmp.path());
    let steps = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
      - uses: yaml-parse
        as: values
        config:
          path: ./src/values.yaml
          outputs:
          - {name: tag, fromExpression: image.tag}
          - {name: replicas, fromExpression: replicas + 1}
      - uses: json-parse
        as: current
        config:
          path: ./src/config.json
          outputs:
          - {name: version, fromExpression: "app.version"}
      - uses: json-update
        as: update
        config:
          path: ./src/config.json
          updates:
          - key: app.version
            value: ${{ quote(outputs.values.tag) }}
          - key: app.replicas
            value: ${{ outputs.values.replicas }}
          - key: feature\.flags.beta
            value: true
      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: "${{ outputs.update.commitMessage }}\n\nwas ${{ outputs.current.version }}"
      - uses: git-tag
        as: tag
        config:
          path: ./src
          tag: release-${{ outputs.values.tag }}
          message: Release ${{ outputs.values.tag }} to ${{ ctx.stage }}
      - uses: git-push
        as: push
        config:
          path: ./src
          tag: ${{ outputs.tag.tag }}
      - uses: fail
        if: ${{ outputs.push.commit != outputs.tag.commit }}
        config:
          message: the tag is not on the pushed commit
"#;
    run_steps(tmp.path(), steps, Some(&bare)).success("run-local");

    let shown = git(&bare, &["show", "--format=", "main"]);
    let changed: Vec<&str> = shown
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-        \"version\": \"1005\",",
            "-        \"replicas\": 1",
            "+        \"version\": \"1006\",",
            "+        \"replicas\": 3",
            "-    \"feature.flags\": { \"beta\": false }",
            "+    \"feature.flags\": { \"beta\": true }",
        ],
        "{shown}"
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with(
            "Updated ./src/config.json\n\n- app.version: \"1006\"\n- app.replicas: 3\n- feature\\.flags.beta: true\n\nwas 1005"
        ),
        "{message}"
    );
    // An annotated tag with the message, on the pushed commit.
    assert_eq!(
        git(&bare, &["cat-file", "-t", "release-1006"]).trim(),
        "tag"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "release-1006^{commit}"]),
        git(&bare, &["rev-parse", "main"])
    );
    assert_eq!(
        git(
            &bare,
            &["tag", "-l", "--format=%(contents)", "release-1006"]
        )
        .trim(),
        "Release 1006 to uat"
    );
}

#[test]
fn git_tag_refuses_to_move_a_tag_and_bad_configs_name_the_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bare = config_repo(tmp.path());
    let clone_and_tag = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
      - uses: git-tag
        config: {path: ./src, tag: v2}
      - uses: json-update
        config:
          path: ./src/config.json
          updates: [{key: app.replicas, value: 5}]
      - uses: git-commit
        config: {path: ./src, message: five}
"#;
    // Tagging again after a new commit would move the tag: refused without force.
    let steps =
        format!("{clone_and_tag}      - uses: git-tag\n        config: {{path: ./src, tag: v2}}\n");
    let run = run_steps(tmp.path(), &steps, Some(&bare)).failure("moving a tag");
    assert!(
        run.stderr
            .contains("config.tag: invalid tag: \"v2\" already exists on commit")
            && run.stderr.contains("set force to move it"),
        "{}",
        run.stderr
    );
    // With force the tag moves to the new commit and is pushed there.
    let steps = format!(
        "{clone_and_tag}      - uses: git-tag\n        config: {{path: ./src, tag: v2, force: true}}\n      - uses: git-push\n        config: {{path: ./src, tag: v2}}\n"
    );
    run_steps(tmp.path(), &steps, Some(&bare)).success("force");
    assert_eq!(
        git(&bare, &["rev-parse", "v2^{commit}"]),
        git(&bare, &["rev-parse", "main"])
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%s", "v2"]).trim(),
        "five"
    );

    let steps = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
      - uses: git-tag
        config: {path: ./src, tag: v3, signingKey: k}
"#;
    let run = run_steps(tmp.path(), steps, Some(&bare)).failure("unknown field");
    assert!(
        run.stderr
            .contains("invalid config: config.signingKey: unknown field `signingKey`"),
        "{}",
        run.stderr
    );
    let steps = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
      - uses: git-push
        config: {path: ./src, tag: v3}
"#;
    let run = run_steps(tmp.path(), steps, Some(&bare)).failure("no such tag");
    assert!(
        run.stderr.contains(
            "config.tag: there is no tag \"v3\" in ./src; create it with a git-tag step first"
        ),
        "{}",
        run.stderr
    );
    let steps = r#"      - uses: json-parse
        config:
          path: ../outside.json
          outputs: [{name: x, fromExpression: a}]
"#;
    let run = run_steps(tmp.path(), steps, None).failure("escaping path");
    assert!(
        run.stderr.contains(
            "config.path: path \"../outside.json\" leaves the promotion's work directory"
        ),
        "{}",
        run.stderr
    );
}

/// One request as the loopback server saw it.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<String>,
    body: String,
}

/// A loopback HTTP/1.1 server answering each request with the next of `responses` (status,
/// JSON body), the last one repeated, and recording what it was sent.
fn serve(responses: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut n = 0usize;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                headers.push(line.trim().to_string());
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if let Ok(mut l) = log.lock() {
                l.push(Seen {
                    request_line: request_line.trim().to_string(),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
            let (status, text) = responses[n.min(responses.len() - 1)];
            n += 1;
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Request-Count: {n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn http_posts_a_webhook_and_later_steps_read_its_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (url, seen) = serve(vec![(200, r#"{"approved": true, "by": "release-bot"}"#)]);
    let steps = r#"      - uses: http
        as: gate
        config:
          method: POST
          url: URL/hooks/promote
          headers:
          - {name: Authorization, value: Bearer t0ken}
          - {name: Content-Type, value: application/json}
          queryParams:
          - name: stage
            value: ${{ ctx.stage }}
          body: '${{ toJSON({"image": imageFrom("ECR").Tag, "freight": ctx.targetFreight.alias}) }}'
          successExpression: response.status == 200 && response.body.approved
          outputs:
          - {name: by, fromExpression: response.body.by}
          - {name: count, fromExpression: "response.headers['X-Request-Count'][0]"}
      - uses: fail
        config:
          message: approved by ${{ outputs.gate.by }} after ${{ outputs.gate.count }} request(s)
"#
    .replace("URL", &url)
    .replace("ECR", ECR);
    let run = run_steps(tmp.path(), &steps, None).failure("fail step");
    assert!(
        run.stderr
            .contains("failed with message: approved by release-bot after 1 request(s)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ended Errored"), "{}", run.stderr);
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].request_line,
        "POST /hooks/promote?stage=uat HTTP/1.1"
    );
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer t0ken")),
        "{seen:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({"image": "1006", "freight": "wonky-wombat"})
    );
}

#[test]
fn http_polls_until_the_success_criteria_hold_and_stops_on_failure_criteria() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (url, seen) = serve(vec![
        (200, r#"{"state": "running"}"#),
        (200, r#"{"state": "running"}"#),
        (200, r#"{"state": "done", "id": 42}"#),
    ]);
    let steps = r#"      - uses: http
        as: wait
        config:
          url: URL/jobs/1
          pollInterval: 1s
          successExpression: response.body.state == 'done'
          failureExpression: response.body.state == 'failed'
          outputs:
          - {name: id, fromExpression: response.body.id}
      - uses: fail
        if: ${{ outputs.wait.id != 42 }}
        config: {message: wrong id}
"#
    .replace("URL", &url);
    let run = run_steps(tmp.path(), &steps, None).success("polling http");
    assert!(
        run.stderr
            .contains("waiting for the success or failure criteria"),
        "{}",
        run.stderr
    );
    assert_eq!(seen.lock().expect("log").len(), 3);

    let (url, _) = serve(vec![(500, r#"{"state": "failed"}"#)]);
    let steps = r#"      - uses: http
        config:
          url: URL/jobs/2?token=secret
          successExpression: response.body.state == 'done'
          failureExpression: response.status >= 500
      - uses: fail
        if: ${{ always() }}
        config: {message: cleanup ran}
"#
    .replace("URL", &url);
    let run = run_steps(tmp.path(), &steps, None).failure("failure criteria");
    assert!(
        run.stderr
            .contains("HTTP (500) response met the failure criteria"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
    assert!(run.stderr.contains("cleanup ran"), "{}", run.stderr);
}
