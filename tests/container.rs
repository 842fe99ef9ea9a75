//! The image built by `scripts/image.sh`, unpacked once per test and run under `runc` (Debian's
//! OCI runtime) as a platform would: read-only root, host networking on a free port, a data
//! volume and secrets bind-mounted from the host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::PASSWORD;

/// Where the image's layout lives and its tag (the workspace's version).
fn image() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layout = root.join("target/image");
    assert!(layout.join("index.json").exists(), "{} is missing: run `scripts/image.sh` first", layout.display());
    format!("{}:{}", layout.display(), env!("CARGO_PKG_VERSION"))
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The image's root filesystem and its default process, unpacked into a folder of the test's.
pub struct Unpacked {
    dir: PathBuf,
    config: Value,
}

impl Unpacked {
    pub fn unpack() -> Self {
        let dir = std::env::temp_dir().join(format!("modelgate-image-{}", uuid::Uuid::new_v4()));
        run(Command::new("umoci").args(["unpack", "--image", &image()]).arg(&dir));
        let config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        Self { dir, config }
    }

    /// The image's own settings (user, environment, entry point) as umoci unpacked them.
    pub fn process(&self) -> &Value {
        &self.config["process"]
    }

    /// A host folder for the container to write as the image's user.
    pub fn volume(&self, name: &str) -> PathBuf {
        let path = self.dir.join("volumes").join(name);
        std::fs::create_dir_all(&path).unwrap();
        let uid = &self.process()["user"]["uid"];
        run(Command::new("chown").arg(format!("{uid}:{uid}")).arg(&path));
        path
    }

    /// A host file holding `contents`, readable by the image's user: a secret to mount.
    pub fn secret(&self, name: &str, contents: &str) -> PathBuf {
        let file = self.volume("secrets").join(name);
        std::fs::write(&file, contents).unwrap();
        file
    }

    /// A file of the image, as text.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.join("rootfs").join(path.trim_start_matches('/'))).unwrap_or_default()
    }

    /// Bytes of the image's files, unpacked.
    pub fn size(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| {
                    let meta = std::fs::symlink_metadata(e.path()).unwrap();
                    if meta.is_dir() { walk(&e.path()) } else { meta.len() }
                })
                .sum()
        }
        walk(&self.dir.join("rootfs"))
    }

    /// Starts a container of the image: `args` after the entry point (none: the image's command),
    /// more environment, and `mounts` of host paths (`(host, container, read_only)`).
    pub fn start(&self, args: &[&str], env: &[(&str, &str)], mounts: &[(&Path, &str, bool)]) -> Container {
        let id = format!("modelgate-{}", uuid::Uuid::new_v4().simple());
        let bundle = self.dir.join(&id);
        std::fs::create_dir_all(&bundle).unwrap();
        let mut config = self.config.clone();
        config["root"] = json!({ "path": self.dir.join("rootfs"), "readonly": true });
        let process = &mut config["process"];
        process["terminal"] = json!(false);
        if !args.is_empty() {
            let entry = process["args"][0].clone();
            process["args"] = std::iter::once(entry).chain(args.iter().map(|a| json!(a))).collect();
        }
        let env_list = process["env"].as_array_mut().unwrap();
        for (name, value) in env {
            env_list.retain(|e| !e.as_str().unwrap().starts_with(&format!("{name}=")));
            env_list.push(json!(format!("{name}={value}")));
        }
        // The host's network (the test reaches it on 127.0.0.1); the declared volume and /tmp
        // on what the test gives instead of the tmpfs umoci puts there.
        let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "network");
        let mount_list = config["mounts"].as_array_mut().unwrap();
        mount_list.retain(|m| m["destination"] != "/var/lib/modelgate");
        mount_list.push(json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", "size=65536k"] }));
        for (host, inside, read_only) in mounts {
            let mode = if *read_only { "ro" } else { "rw" };
            mount_list.push(json!({ "destination": inside, "type": "bind", "source": host,
                "options": ["rbind", mode, "nosuid", "nodev"] }));
        }
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = bundle.join("output.log");
        let out = std::fs::File::create(&log).unwrap();
        let status = Command::new("runc")
            .args(["run", "--detach", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        assert!(status.success(), "runc run: {}", std::fs::read_to_string(&log).unwrap_or_default());
        Container { id, log }
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container started by `runc`; killed and deleted when dropped.
pub struct Container {
    pub id: String,
    log: PathBuf,
}

impl Container {
    /// What the runtime says of it (`status`, `pid`, …).
    pub fn state(&self) -> Value {
        serde_json::from_slice(&run(Command::new("runc").args(["state", &self.id])).stdout).unwrap()
    }

    /// What its process has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a further process inside it, as `kubectl exec` would, feeding `stdin`.
    pub fn exec(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new("runc")
            .args(["exec", &self.id])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "runc exec {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// A user `ops` holding `roles` and an API token of theirs, made inside the container with
    /// the image's CLI, as `kubectl exec` would.
    pub fn token(&self, roles: &[&str]) -> String {
        let role_args: Vec<&str> = roles.iter().flat_map(|role| ["--role", role]).collect();
        let added =
            self.exec(&[&["modelgate", "user", "add", "ops"][..], &role_args].concat(), &format!("{PASSWORD}\n"));
        assert!(added.contains("user ops created"), "{added}");
        let token = self
            .exec(&[&["modelgate", "token", "create", "--user", "ops", "--name", "t"][..], &role_args].concat(), "");
        token.trim().to_string()
    }

    /// Its process's resident memory now and at its peak, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.state()["pid"].as_i64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Waits until its process has exited; panics after `limit`.
    pub async fn wait_stopped(&self, limit: Duration) {
        let started = Instant::now();
        while self.state()["status"] != "stopped" {
            assert!(started.elapsed() < limit, "still running after {limit:?}: {}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal to its process (`TERM`, as Kubernetes does when it stops a pod).
    pub fn signal(&self, signal: &str) {
        run(Command::new("runc").args(["kill", &self.id, signal]));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc").args(["delete", "--force", &self.id]).output();
    }
}

/// Polls `url` until it answers 200, for at most `limit`.
pub async fn wait_ready(url: &str, limit: Duration, container: &Container) {
    let started = Instant::now();
    while !reqwest::get(url).await.is_ok_and(|r| r.status() == 200) {
        assert!(started.elapsed() < limit, "{url} not ready after {limit:?}: {}", container.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
