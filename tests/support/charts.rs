//! Helm charts for the chart tests: packaged and pushed with the real helm, and a classic chart
//! repository (`index.yaml` + `.tgz`) served by a tiny loopback HTTP server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::helm::helm_bin;

/// `helm` with its state in `home`, never the user's.
pub fn helm(home: &Path, args: &[&str]) -> String {
    let out = Command::new(helm_bin())
        .args(args)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("HELM_REGISTRY_CONFIG", home.join("registry.json"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A minimal chart `name` at `version`, packaged into `out`; the archive's path.
pub fn package(home: &Path, out: &Path, name: &str, version: &str) -> PathBuf {
    let src = home.join("src").join(format!("{name}-{version}"));
    std::fs::create_dir_all(src.join("templates")).expect("chart dir");
    std::fs::write(
        src.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\ntype: application\n"),
    )
    .expect("Chart.yaml");
    std::fs::write(
        src.join("templates/cm.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  version: {version:?}\n"
        ),
    )
    .expect("template");
    std::fs::create_dir_all(out).expect("out dir");
    helm(
        home,
        &[
            "package",
            &src.display().to_string(),
            "-d",
            &out.display().to_string(),
        ],
    );
    out.join(format!("{name}-{version}.tgz"))
}

/// Packages `name` at each version and pushes it to `oci://<registry>/<repo>` (the chart lands
/// at `<repo>/<name>`), with basic credentials when given.
pub fn push_oci(
    home: &Path,
    registry: &str,
    repo: &str,
    name: &str,
    versions: &[&str],
    creds: Option<(&str, &str)>,
) {
    for v in versions {
        let tgz = package(home, &home.join("pkg"), name, v);
        let dest = format!("oci://{registry}/{repo}");
        let mut args = vec!["push", tgz.to_str().expect("utf-8"), &dest, "--plain-http"];
        if let Some((u, p)) = creds {
            args.extend(["--username", u, "--password", p]);
        }
        helm(home, &args);
    }
}

/// A classic chart repository served from a directory on 127.0.0.1, optionally behind basic
/// auth. The thread lives as long as the test binary.
pub struct HttpRepo {
    pub dir: PathBuf,
    pub url: String,
}

impl HttpRepo {
    pub fn start(dir: &Path, basic_auth: Option<(&str, &str)>) -> Self {
        use base64::Engine as _;
        std::fs::create_dir_all(dir).expect("repo dir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let expected = basic_auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let root = dir.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let expected = expected.clone();
                std::thread::spawn(move || serve(stream, &root, expected.as_deref()));
            }
        });
        Self {
            dir: dir.to_path_buf(),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Packages the versions into the repository and regenerates `index.yaml` with helm.
    pub fn publish(&self, home: &Path, name: &str, versions: &[&str]) {
        for v in versions {
            package(home, &self.dir, name, v);
        }
        helm(
            home,
            &[
                "repo",
                "index",
                &self.dir.display().to_string(),
                "--url",
                &self.url,
            ],
        );
    }
}

fn serve(stream: std::net::TcpStream, root: &Path, expected: Option<&str>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            auth = Some(v.trim().to_string());
        }
    }
    let mut stream = stream;
    let (status, body) = if expected.is_some() && auth.as_deref() != expected {
        ("401 Unauthorized", Vec::new())
    } else {
        let rel = path.trim_start_matches('/');
        let file = root.join(rel);
        match (rel.contains(".."), std::fs::File::open(&file)) {
            (false, Ok(mut f)) => {
                let mut b = Vec::new();
                let _ = f.read_to_end(&mut b);
                ("200 OK", b)
            }
            _ => ("404 Not Found", Vec::new()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status.starts_with("401") {
            "WWW-Authenticate: Basic realm=\"charts\"\r\n"
        } else {
            ""
        }
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}
