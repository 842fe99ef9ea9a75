//! Test harness: a fresh database per test on SQLite or PostgreSQL, and the real server on port 0.

pub mod container;

use std::path::PathBuf;
use std::sync::Arc;

use app::domain::{NewToken, NewUser, Origin, Role};
use app::server_fns::SignIn;
use leptos::server_fn::ServerFn;
use reqwest::{Client, Response};
use serde_json::Value;
use server::application::Application;
use server::audit::AuditActor;
use server::clock::Clock;
use server::config::Config;
use server::store::Store;
use sqlx::Connection;
use tokio::sync::oneshot;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn name(backend: Backend)` once per backend, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// The server PostgreSQL tests create their databases on; override with `MODELGATE_TEST_POSTGRES`.
pub fn postgres_admin_url() -> String {
    std::env::var("MODELGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Files(PathBuf),
    Database(String),
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("modelgate-test-{id}.db"));
                Self { url: format!("sqlite://{}", path.display()), cleanup: Cleanup::Files(path) }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("modelgate_test_{id}");
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {admin} for the tests: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                Self { url: format!("{base}/{name}"), cleanup: Cleanup::Database(name) }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Files(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Database(name) => {
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                    rt.block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await.ok()?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await
                            .ok()
                    })
                })
                .join();
            }
        }
    }
}

/// The whole server, listening on a free port, with a fresh database and a manual clock.
/// `client` acts as an operator and admin through an API token; see [`TestApp::client_as`].
pub struct TestApp {
    pub base: String,
    /// The API token `client` sends (user `tester`: operator and admin).
    pub token: String,
    pub client: Client,
    pub anonymous: Client,
    pub store: Arc<Store>,
    pub clock: Clock,
    /// The directory the server keeps artifacts in (removed when the app is dropped).
    pub artifact_store: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _db: TestDb,
}

/// The audit signing key of test servers (a base64 Ed25519 seed); tests verify exports with its
/// public key (`GET /api/v1/audit/public-key`).
pub const TEST_AUDIT_KEY: &str = "dGVzdHMgc2lnbiB0aGVpciBhdWRpdCBjaGVja3B0cyE=";

/// The assignment signing key of test servers (a base64 Ed25519 seed).
pub const TEST_ASSIGNMENT_KEY: &str = "dGVzdHMgc2lnbiB0aGVpciBhc3NpZ25tZW50cyBvayE=";

/// 2026-01-01T00:00:00Z, where every test's clock starts.
pub const TEST_EPOCH_MS: i64 = 1_767_225_600_000;

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with a configuration adjusted by `configure`.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create(backend).await;
        let mut config = Config::for_database(&db.url);
        config.site_root = site_root().display().to_string();
        config.audit.key = Some(TEST_AUDIT_KEY.into());
        config.audit.witness_file = witness_file();
        config.fleet.assignment_key = Some(TEST_ASSIGNMENT_KEY.into());
        let artifact_store = std::env::temp_dir().join(format!("modelgate-artifacts-{}", uuid::Uuid::new_v4()));
        config.artifact_store = artifact_store.display().to_string();
        // The suite's webhook receivers listen on loopback.
        config.webhooks.allow_private = true;
        configure(&mut config);
        server::telemetry::init(&std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()), config.log_format);
        let clock = Clock::manual(TEST_EPOCH_MS);
        let app = Application::build(&config, clock.clone()).await.expect("server starts");
        let base = format!("http://{}", app.local_addr());
        let store = app.store();
        let token = create_user(&store, "tester", &[Role::Operator, Role::Admin]).await;
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            base,
            client: bearer_client(&token),
            token,
            anonymous: bearer_client(""),
            store,
            clock,
            artifact_store,
            shutdown: Some(tx),
            server: Some(server),
            _db: db,
        }
    }

    /// A client acting through an API token of a new user holding exactly `roles`.
    pub async fn client_as(&self, username: &str, roles: &[Role]) -> Client {
        bearer_client(&create_user(&self.store, username, roles).await)
    }

    /// Signs in through the console's sign-in server function; returns the session cookie
    /// (`name=value`) and the response.
    pub async fn sign_in(&self, username: &str, password: &str) -> (Option<String>, Response) {
        let form = [("username", username), ("password", password), ("next", "/")];
        let response =
            self.anonymous.post(self.url(<SignIn as ServerFn>::PATH)).form(&form).send().await.expect("sign in");
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.contains("modelgate_session="))
            .and_then(|v| v.split(';').next())
            .map(str::to_string);
        (cookie, response)
    }

    /// A browser-like client of a signed-in session: sends the cookie and this site's `Origin`.
    pub fn session_client(&self, cookie: &str) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::COOKIE, cookie.parse().expect("cookie"));
        headers.insert(reqwest::header::ORIGIN, self.base.parse().expect("origin"));
        Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client")
    }

    /// The sequence number at the head of the audit chain.
    pub async fn audit_head(&self) -> i64 {
        json(self.get("/api/v1/audit/status").await, 200).await["head_seq"].as_i64().unwrap()
    }

    /// Runs *verify now* to its end (a background job: started, then waited for) and returns the
    /// integrity status after it.
    pub async fn verify_audit(&self) -> Value {
        let started = json(self.post("/api/v1/audit/verify", &serde_json::json!({})).await, 202).await;
        let job = json(self.get(&format!("/api/v1/audit/jobs/{}?wait=30", started["id"])).await, 200).await;
        assert_eq!(job["state"], "done", "{job}");
        json(self.get("/api/v1/audit/status").await, 200).await
    }

    /// Starts *verify now* as `by`, held once it has reported 1 of 4 entries (after 600 ms) until
    /// the returned sender fires; then it verifies the chain for real. Returns the job's id.
    pub async fn held_verification(&self, by: &str) -> (i64, oneshot::Sender<()>) {
        let (release, released) = oneshot::channel::<()>();
        let store = self.store.clone();
        let job = server::jobs::start(
            &self.store,
            app::domain::JobKind::AuditVerify,
            "",
            by,
            move |mut progress| async move {
                tokio::time::sleep(std::time::Duration::from_millis(600)).await;
                progress.report(1, 4).await?;
                released.await.ok();
                let verification = store.verify_chain(&mut progress).await?;
                Ok(serde_json::to_value(verification).unwrap())
            },
        )
        .await
        .unwrap();
        (job.id, release)
    }

    /// How many objects the app's artifact store holds.
    pub fn stored_objects(&self) -> usize {
        fn count(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries.flatten().map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 }).sum()
            })
        }
        count(&self.artifact_store)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("POST")
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.client.patch(self.url(path)).json(body).send().await.expect("PATCH")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.expect("DELETE")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let _ = std::fs::remove_dir_all(&self.artifact_store);
    }
}

/// The password of every user the tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// A request origin from a client address, for calling the store directly.
pub fn origin(client_addr: &str) -> Origin {
    Origin { request_id: None, client_addr: Some(client_addr.into()) }
}

/// Creates a user with `roles` and an API token holding all of them (an agent's for staging);
/// returns the token.
pub async fn create_user(store: &Store, username: &str, roles: &[Role]) -> String {
    let user = NewUser {
        username: username.into(),
        display_name: username.into(),
        password: PASSWORD.into(),
        roles: roles.to_vec(),
    };
    store.bootstrap_user(AuditActor::system("tests"), user).await.expect("create user");
    let token = NewToken {
        name: "tests".into(),
        owner: None,
        roles: roles.to_vec(),
        // An agent token serves staging, where the tests deploy.
        environments: if roles.contains(&Role::Agent) { vec!["staging".into()] } else { Vec::new() },
        expires_in_days: None,
    };
    store.bootstrap_token(username, token).await.expect("create token").token
}

/// A client that sends `token` as a bearer token (none when empty) and follows no redirects.
pub fn bearer_client(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if !token.is_empty() {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("header"));
    }
    Client::builder().default_headers(headers).redirect(reqwest::redirect::Policy::none()).build().expect("http client")
}

/// Reads a JSON body, asserting the status first (the body is shown when it differs).
pub async fn json(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts an error response: status, error code, and (when given) the field it names.
pub async fn expect_error(response: Response, status: u16, field: Option<&str>) -> Value {
    let body = json(response, status).await;
    let error = &body["error"];
    assert!(error["code"].is_string() && error["message"].is_string(), "error envelope: {body}");
    if let Some(field) = field {
        assert_eq!(error["details"]["field"], field, "error should name the field: {body}");
    }
    body
}

/// The debug `modelgate` binary built by `scripts/build.sh` (scripts/test.sh builds it first),
/// signing with the tests' audit and assignment keys.
pub fn modelgate() -> std::process::Command {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/modelgate");
    assert!(path.exists(), "{} is missing: run `scripts/build.sh` first", path.display());
    let mut command = std::process::Command::new(path);
    command.env("MODELGATE_AUDIT_KEY", TEST_AUDIT_KEY);
    command.env("MODELGATE_ASSIGNMENT_KEY", TEST_ASSIGNMENT_KEY);
    command.env("MODELGATE_AUDIT_WITNESS_FILE", witness_file());
    command.env("MODELGATE_WEBHOOK_ALLOW_PRIVATE", "true");
    let artifacts = std::env::temp_dir().join(format!("modelgate-artifacts-{}", uuid::Uuid::new_v4()));
    command.env("MODELGATE_ARTIFACT_STORE", artifacts);
    command
}

/// A checkpoint file of its own for each server or command: tests run many databases at once.
pub fn witness_file() -> PathBuf {
    std::env::temp_dir().join(format!("modelgate-witness-{}.json", uuid::Uuid::new_v4()))
}

/// Runs the binary with `stdin` as standard input; asserts success and returns standard output.
pub fn run_modelgate(args: &[&str], database_url: &str, stdin: &str) -> String {
    let mut child = modelgate()
        .args(args)
        .env("DATABASE_URL", database_url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run modelgate");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "modelgate {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `modelgate serve` in a process of its own on a free port, logging JSON to its stdout.
pub struct ServerProcess {
    pub base: String,
    child: Option<std::process::Child>,
}

impl ServerProcess {
    /// Starts the server with `args` on `database_url` and waits until it is ready.
    pub async fn start(database_url: &str, args: &[&str]) -> Self {
        Self::start_with_env(database_url, args, &[]).await
    }

    /// [`ServerProcess::start`] with more environment variables.
    pub async fn start_with_env(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = modelgate()
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .env("DATABASE_URL", database_url)
            .env("MODELGATE_ADDR", format!("127.0.0.1:{port}"))
            .env("MODELGATE_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start modelgate serve");
        let server = Self { base: format!("http://127.0.0.1:{port}"), child: Some(child) };
        let started = std::time::Instant::now();
        while !reqwest::get(format!("{}/readyz", server.base)).await.is_ok_and(|r| r.status() == 200) {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "server did not become ready");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server
    }

    /// Stops the server with SIGTERM and returns how it exited and what it logged.
    pub async fn terminate(mut self) -> std::process::Output {
        let child = self.child.take().expect("running");
        let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `s3s-fs` (an S3-protocol server from crates.io, installed by `scripts/bootstrap.sh --tests`)
/// serving a directory, whose subdirectories are its buckets.
pub struct S3Server {
    pub endpoint: String,
    root: PathBuf,
    child: std::process::Child,
}

const ACCESS_KEY: &str = "modelgate-test";
const SECRET_KEY: &str = "modelgate-test-secret";

impl S3Server {
    pub async fn start(bucket: &str) -> Self {
        let binary = PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo/bin/s3s-fs");
        assert!(binary.exists(), "{} is missing: run scripts/bootstrap.sh --tests", binary.display());
        let root = std::env::temp_dir().join(format!("modelgate-s3-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let port = free_port();
        let child = std::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let started = std::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed().as_secs() < 20, "s3s-fs did not listen");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self { endpoint: format!("http://127.0.0.1:{port}"), root, child }
    }

    /// The environment that points the S3 client of `modelgate serve` at this server.
    pub fn credentials(&self) -> [(&'static str, &str); 5] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }

    /// Every object under `prefix` of `bucket`, as files on s3s-fs's disk.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join(bucket).join(prefix), &mut out);
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Two server processes on one fresh PostgreSQL database (replicas behind one load balancer) and
/// a client with the API token of user `ops`, who holds `roles`.
pub struct Replicas {
    pub servers: [ServerProcess; 2],
    pub client: Client,
    /// Dropped last, after the servers that use it.
    _db: TestDb,
}

impl Replicas {
    pub async fn start(roles: &[&str]) -> Self {
        let db = TestDb::create(Backend::Postgres).await;
        let token = migrate_with_user(&db.url, roles);
        let servers = [ServerProcess::start(&db.url, &[]).await, ServerProcess::start(&db.url, &[]).await];
        Self { servers, client: bearer_client(&token), _db: db }
    }
}

/// Migrates the database and adds user `ops` holding `roles` through the CLI, as an operator sets
/// up a server; returns an API token of theirs with those roles.
pub fn migrate_with_user(database_url: &str, roles: &[&str]) -> String {
    run_modelgate(&["migrate"], database_url, "");
    let role_args: Vec<&str> = roles.iter().flat_map(|role| ["--role", role]).collect();
    run_modelgate(&[&["user", "add", "ops"][..], &role_args].concat(), database_url, PASSWORD);
    let token_args = [&["token", "create", "--user", "ops", "--name", "t"][..], &role_args].concat();
    run_modelgate(&token_args, database_url, "").trim().to_string()
}

/// The built console assets, `target/site` in the workspace.
pub fn site_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site")
}

/// The path the built console's files are served under (`/pkg/<digest>`) and their directory.
pub fn sealed_site() -> (String, PathBuf) {
    let id = std::fs::read_to_string(site_root().join("build-id")).expect("the built console (scripts/build.sh)");
    let path = format!("/pkg/{}", id.trim());
    let dir = site_root().join(path.trim_start_matches('/'));
    (path, dir)
}

/// A valid sha256 digest that differs per seed.
pub fn digest(seed: u8) -> String {
    format!("sha256:{}", format!("{seed:02x}").repeat(32))
}

/// Registers a model and `versions` versions with digests through the API.
pub async fn seed_model(app: &TestApp, name: &str, versions: u8) {
    json(app.post("/api/v1/models", &serde_json::json!({ "name": name, "owner_team": "team-a" })).await, 201).await;
    for n in 1..=versions {
        let body = serde_json::json!({ "artifact_uri": format!("s3://m/{name}/{n}"), "artifact_digest": digest(n) });
        json(app.post(&format!("/api/v1/models/{name}/versions"), &body).await, 201).await;
    }
}

/// A server-sent event as a test reads it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub data: Value,
}

/// An open `text/event-stream` response, read event by event.
pub struct EventStream {
    response: Response,
    buffer: String,
    /// Events read while looking for another name, in arrival order.
    skipped: Vec<(String, SseEvent)>,
}

impl EventStream {
    /// Sends the request and checks that it opened an event stream.
    pub async fn open(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.expect("subscribe");
        assert_eq!(response.status(), 200, "event stream refused");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Self { response, buffer: String::new(), skipped: Vec::new() }
    }

    /// The next event named `name`, within 10 seconds; events of other names stay for later calls
    /// (events of different kinds may arrive in either order).
    pub async fn next(&mut self, name: &str) -> SseEvent {
        if let Some(i) = self.skipped.iter().position(|(n, _)| n == name) {
            return self.skipped.remove(i).1;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |f: &str| block.lines().find_map(|l| l.strip_prefix(f)).map(str::trim).map(String::from);
                let (Some(event), Some(data)) = (field("event:"), field("data:")) else { continue };
                let parsed = SseEvent {
                    id: field("id:").map(|id| id.parse().expect("numeric event id")),
                    data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
                };
                if event == name {
                    return parsed;
                }
                self.skipped.push((event, parsed));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no '{name}' event in time"))
                .expect("stream readable")
                .expect("stream open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Asserts that no event named `name` arrives within `wait`.
    pub async fn expect_none(&mut self, name: &str, wait: std::time::Duration) {
        let found = tokio::time::timeout(wait, self.next(name)).await;
        assert!(found.is_err(), "unexpected '{name}' event: {:?}", found.ok());
    }
}

/// A webhook delivery as a receiver got it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: http::HeaderMap,
    pub body: String,
}

/// A small HTTP receiver on 127.0.0.1 that records every POST and answers with the status
/// `status` holds (200 unless changed).
pub struct WebhookReceiver {
    pub url: String,
    pub status: Arc<std::sync::atomic::AtomicU16>,
    received: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Listens on `port` (0 for any free one).
    pub async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
        let answer = status.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let (tx, answer) = (tx.clone(), answer.clone());
                async move {
                    // The answer is decided before the test hears of the request.
                    let status = http::StatusCode::from_u16(answer.load(std::sync::atomic::Ordering::SeqCst)).unwrap();
                    let _ = tx.send(Delivery { headers, body });
                    status
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, status, received, server }
    }

    /// The next delivery, within 15 seconds.
    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(std::time::Duration::from_secs(15), self.received.recv())
            .await
            .expect("a delivery in time")
            .expect("receiver running")
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A free port on 127.0.0.1 that nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The word after `name` on the command line (the benchmarks' options).
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The number after `name` on the command line, or `default`.
pub fn number_arg(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An MLflow API request as MLflow's clients send it: GET parameters in the query string (strings
/// as they are, other values as JSON), a JSON body otherwise.
pub fn mlflow_request(
    client: &Client,
    base: &str,
    method: reqwest::Method,
    endpoint: &str,
    body: &Value,
) -> reqwest::RequestBuilder {
    let url = format!("{base}/api/2.0/mlflow/{endpoint}");
    if method != reqwest::Method::GET {
        return client.request(method, url).json(body);
    }
    let query: Vec<(String, String)> = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect();
    client.get(url).query(&query)
}
