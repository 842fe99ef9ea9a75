//! Benchmark client for a running Modelgate server (see `scripts/bench.sh`): seeds models and
//! versions over the API, then measures throughput and latency percentiles over loopback.
//!
//! Usage: `loadgen BASE_URL --token API_TOKEN --user NAME --password PW
//!         [--models N] [--versions N] [--seconds S] [--clients C]`

mod harness;

use std::sync::Arc;

use harness::{print_table, run};
use modelgate_tests::{arg, number_arg};
use reqwest::Client;
use serde_json::json;

struct Options {
    base: String,
    token: String,
    user: String,
    password: String,
    models: usize,
    versions: usize,
    seconds: u64,
    clients: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Options {
        base: args.first().cloned().unwrap_or_else(|| "http://127.0.0.1:3000".into()),
        token: arg("--token").expect("--token API_TOKEN is required"),
        user: arg("--user").expect("--user NAME is required"),
        password: arg("--password").expect("--password PW is required"),
        models: number_arg("--models", 100),
        versions: number_arg("--versions", 100),
        seconds: number_arg("--seconds", 5) as u64,
        clients: number_arg("--clients", 8),
    }
}

fn model_name(i: usize) -> String {
    format!("bench-model-{i:03}")
}

#[tokio::main]
async fn main() {
    let o = options();
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", o.token).parse().expect("token header"));
    let client = Client::builder().pool_max_idle_per_host(64).default_headers(auth).build().expect("client");
    let base = Arc::new(o.base.clone());
    let models = o.models;
    println!("seeding {} models x {} versions on {}", o.models, o.versions, o.base);

    let (c, b) = (client.clone(), base.clone());
    let create = run("model registration", 1, 0, Some(o.models), move |i| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            let body = json!({ "name": model_name(i), "owner_team": "bench", "tags": ["bench"] });
            c.post(format!("{b}/api/v1/models")).json(&body).send().await.is_ok_and(|r| r.status() == 201)
        }
    })
    .await;

    let per_model = o.versions;
    let (c, b) = (client.clone(), base.clone());
    let register = run("version registration (seeding)", o.clients, 0, Some(o.models * per_model), move |i| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            let model = model_name(i % models);
            let body = json!({
                "artifact_uri": format!("s3://bench/{model}/{i}"),
                "artifact_digest": format!("sha256:{:064x}", i),
                "framework": "xgboost",
                "parameters": { "lr": "0.1", "depth": "6" },
                "lineage": { "git_commit": "0123456789abcdef0123456789abcdef01234567", "run_id": format!("run-{i}") }
            });
            c.post(format!("{b}/api/v1/models/{model}/versions"))
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status() == 201)
        }
    })
    .await;

    for i in 0..o.models {
        for (env, v) in [("staging", per_model), ("production", per_model.saturating_sub(1).max(1))] {
            let url = format!("{}/api/v1/models/{}/environments/{env}/deploy", o.base, model_name(i));
            client.post(url).json(&json!({ "version": v })).send().await.expect("deploy");
        }
    }

    let (c, b) = (client.clone(), base.clone());
    let register_one = run("version registration", 1, o.seconds, None, move |i| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            let body = json!({ "artifact_uri": format!("s3://bench/extra/{i}"), "artifact_digest": format!("sha256:{:064x}", i) });
            c.post(format!("{b}/api/v1/models/{}/versions", model_name(i % models))).json(&body).send().await.is_ok_and(|r| r.status() == 201)
        }
    })
    .await;

    // A GET scenario: `path(i)` names the resource for the i-th request; the body is read in full.
    let get = |name: &'static str, clients: usize, path: fn(String) -> String| {
        let (c, b) = (client.clone(), base.clone());
        run(name, clients, o.seconds, None, move |i| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                match c.get(format!("{b}{}", path(model_name(i % models)))).send().await {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        })
    };
    let live = |clients| {
        get("live-version read (GET, ETag)", clients, |m| format!("/api/v1/models/{m}/environments/production"))
    };
    let list = |clients| get("version list, page of 50", clients, |m| format!("/api/v1/models/{m}/versions?limit=50"));
    let ssr = |clients| get("SSR of the model page", clients, |m| format!("/models/{m}"));

    // Sign-in through the console's server function: dominated by Argon2id by design.
    let anonymous = Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let (b, user, password) = (base.clone(), o.user.clone(), o.password.clone());
    let sign_in = run("sign-in (Argon2id)", 1, 0, Some(40), move |_| {
        let (c, b, user, password) = (anonymous.clone(), b.clone(), user.clone(), password.clone());
        async move {
            let form = [("username", user.as_str()), ("password", password.as_str()), ("next", "/")];
            let path = <app::server_fns::SignIn as leptos::server_fn::ServerFn>::PATH;
            c.post(format!("{b}{path}"))
                .form(&form)
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() < 400 && r.headers().contains_key(reqwest::header::SET_COOKIE))
        }
    })
    .await;

    let mut samples = vec![create, register, register_one, sign_in];
    samples.push(live(o.clients).await);
    samples.push(live(1).await);
    samples.push(list(o.clients).await);
    samples.push(list(1).await);
    samples.push(ssr(o.clients).await);
    samples.push(ssr(1).await);

    println!();
    print_table(&mut samples);
    let errors: usize = samples.iter().map(|s| s.errors).sum();
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}
