//! Connections under pressure: idle, half-sent and kept-alive sockets are closed after the head
//! timeout, one address cannot hold more than its share, a body sent too slowly is answered 408,
//! and through all of it the health check answers at once; a request answered without needing its
//! body keeps its connection for the client's next request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app::server_fns::SignIn;
use leptos::server_fn::ServerFn;
use modelgate_tests::{Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Whether the server has closed `stream` (end of file or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_and_never_starve_the_health_check() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.header_timeout_secs = 1;
        c.request_timeout_secs = 1;
        c.max_connections_per_address = 1_000;
    })
    .await;
    let server: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();

    // 2,000 idle sockets from one address: half of them over its limit.
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(socket.connect(server).await.unwrap());
    }
    let mut half_sent = TcpStream::connect(server).await.unwrap();
    half_sent.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        let health = app.anonymous.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(100), "/healthz took {took:?} beside 2,000 idle sockets");
    }
    let mut refused = 0;
    for stream in idle.iter_mut().rev().take(1_000) {
        refused += usize::from(closed_within(stream, Duration::from_millis(200)).await);
    }
    assert_eq!(refused, 1_000, "the connections over the per-address limit are closed on arrival");

    // After the head timeout, every idle and half-sent connection is closed, and a kept-alive one too.
    let mut kept_alive = TcpStream::connect(server).await.unwrap();
    kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    kept_alive.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for stream in idle.iter_mut().take(1_000) {
        assert!(closed_within(stream, Duration::from_millis(500)).await, "an idle connection outlived the timeout");
    }
    assert!(closed_within(&mut half_sent, Duration::from_millis(500)).await, "a half-sent head outlived the timeout");
    assert!(closed_within(&mut kept_alive, Duration::from_millis(500)).await, "an idle keep-alive outlived it");

    // A body sent too slowly: 408 with the JSON error body once the request time is up.
    let mut slow = TcpStream::connect(server).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {server}\r\nOrigin: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nusername=",
        <SignIn as ServerFn>::PATH,
        app.base
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// MLflow's client asks the artifact proxy for a multipart upload before a large file, its body sent
/// after its head; the refusal waits for that body, so the client's `PUT` that follows on the same
/// connection is answered (it once met a connection closed under it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_multipart_upload_keeps_its_connection_for_the_next_request() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = modelgate_tests::create_user(&app.store, "pipeline", &[app::domain::Role::Operator]).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let body = r#"{"path": "/tmp/weights.bin", "num_parts": 1}"#;
    let head = format!(
        "POST /api/2.0/mlflow-artifacts/mpu/create/1/abc/artifacts/model/weights.bin HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let refusal = read_response(&mut stream).await;
    assert!(refusal.starts_with("HTTP/1.1 501"), "{refusal}");
    assert!(refusal.contains("Multipart upload is not supported"), "{refusal}");
    assert!(!refusal.to_ascii_lowercase().contains("connection: close"), "{refusal}");

    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let next = read_response(&mut stream).await;
    assert!(next.starts_with("HTTP/1.1 200"), "the next request on the connection: {next:?}");
}

/// One response read off `stream`: its head, then as many body bytes as its Content-Length says.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            if bytes.len() >= end + 4 + length {
                return text;
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return String::from_utf8_lossy(&bytes).to_string(),
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}
