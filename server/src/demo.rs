//! The demo data set: a few models with versions, deployments and history in both environments.

use std::collections::BTreeMap;

use app::backend::{Deployments, Metrics, Registry};
use app::domain::*;
use sha2::{Digest, Sha256};

use crate::audit::AuditActor;
use crate::clock::Clock;
use crate::store::Store;

struct DemoModel {
    name: &'static str,
    description: &'static str,
    team: &'static str,
    tags: &'static [&'static str],
    framework: &'static str,
    versions: i64,
    /// Version numbers deployed to staging, in order.
    staging: &'static [i64],
    /// Version numbers deployed to production, in order.
    production: &'static [i64],
    quarantined: Option<(i64, &'static str)>,
}

const MODELS: &[DemoModel] = &[
    DemoModel {
        name: "fraud-detector",
        description: "Scores card transactions for fraud in real time.",
        team: "risk-ml",
        tags: &["tabular", "realtime", "pci"],
        framework: "xgboost",
        versions: 8,
        staging: &[2, 4, 6, 8],
        production: &[2, 4, 6],
        quarantined: Some((7, "label leakage: chargeback flag present in training features")),
    },
    DemoModel {
        name: "churn-predictor",
        description: "Weekly churn propensity per subscriber.",
        team: "growth-analytics",
        tags: &["tabular", "batch"],
        framework: "scikit-learn",
        versions: 6,
        staging: &[3, 5, 6],
        production: &[3, 5],
        quarantined: None,
    },
    DemoModel {
        name: "search-ranker",
        description: "Re-ranks product search results with a cross-encoder.",
        team: "search-relevance",
        tags: &["nlp", "realtime"],
        framework: "pytorch",
        versions: 9,
        staging: &[5, 7, 9],
        production: &[5, 7],
        quarantined: Some((8, "p99 latency regression of 40 ms on the shadow fleet")),
    },
    DemoModel {
        name: "demand-forecast",
        description: "Daily demand forecast per store and SKU.",
        team: "supply-chain-ds",
        tags: &["time-series", "batch"],
        framework: "lightgbm",
        versions: 7,
        staging: &[4, 6, 7],
        production: &[4, 6],
        quarantined: None,
    },
];

fn digest_of(model: &str, number: i64) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(format!("{model}/{number}").as_bytes())))
}

/// How many of each model's newest versions are registered with their files (the older ones
/// name files kept elsewhere, with a digest their pipeline supplied).
const HELD_VERSIONS: i64 = 2;

/// A demo version's files: MLflow's model descriptor, the model, its requirements.
fn demo_files(m: &DemoModel, n: i64) -> [(&'static str, Vec<u8>); 3] {
    let seed = Sha256::digest(format!("{}/{n}", m.name));
    let weights: Vec<u8> = (0..16_384usize).map(|i| seed[i % 32].wrapping_mul(i as u8 | 1)).collect();
    let descriptor = format!("flavors:\n  {}:\n    model_file: model.bin\nmodel_version: {n}\n", m.framework);
    let requirements = format!("{}\nnumpy==2.1.3\n", m.framework);
    [("MLmodel", descriptor.into_bytes()), ("model.bin", weights), ("requirements.txt", requirements.into_bytes())]
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The demo users: one per role, named after it.
const USERS: &[(&str, &str, Role)] = &[
    ("admin", "Ada Admin", Role::Admin),
    ("operator", "Otto Operator", Role::Operator),
    ("reviewer", "Rita Reviewer", Role::Reviewer),
    ("compliance", "Carl Compliance", Role::Compliance),
    ("viewer", "Vera Viewer", Role::Viewer),
];

/// A demo user's sign-in.
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub role: Role,
}

/// Seeds the demo users and data unless the database already has users; returns the users'
/// credentials when it seeded. The history is spread over the last 90 days, as if the models had
/// been in use for a while.
pub async fn seed(live: &Store, password: Option<&str>) -> anyhow::Result<Option<Vec<Credentials>>> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(live.db.pool()).await?;
    if users > 0 {
        return Ok(None);
    }
    let clock = Clock::manual(live.clock.now_ms() - 90 * DAY_MS);
    let store = &live.with_clock(clock.clone());
    let mut credentials = Vec::new();
    for (username, display_name, role) in USERS {
        let password = password.map_or_else(random_password, str::to_string);
        let user = NewUser {
            username: username.to_string(),
            display_name: display_name.to_string(),
            password: password.clone(),
            roles: vec![*role],
        };
        store.bootstrap_user(AuditActor::system("demo"), user).await?;
        credentials.push(Credentials { username: username.to_string(), password, role: *role });
    }
    let actor = Caller {
        user_id: 0,
        username: "demo-seed".into(),
        roles: Roles::from([Role::Operator, Role::Admin]),
        token: None,
        origin: Origin::default(),
        environments: Vec::new(),
    };
    for m in MODELS {
        store
            .create_model(
                &actor,
                NewModel {
                    name: m.name.into(),
                    description: m.description.into(),
                    owner_team: m.team.into(),
                    tags: m.tags.iter().map(|t| t.to_string()).collect(),
                },
            )
            .await?;
        for n in 1..=m.versions {
            let parameters = BTreeMap::from([
                ("learning_rate".to_string(), format!("{:.3}", 0.1 / n as f64)),
                ("max_depth".to_string(), (4 + n % 4).to_string()),
                ("epochs".to_string(), (10 * n).to_string()),
            ]);
            let commit = hex::encode(Sha256::digest(format!("{}-{n}", m.name).as_bytes()));
            let input = NewVersion {
                artifact_uri: format!("s3://models/{}/{n}/model.bin", m.name),
                artifact_digest: Some(digest_of(m.name, n)),
                framework: m.framework.into(),
                parameters,
                lineage: Lineage {
                    run_id: Some(format!("run-{}-{n:03}", m.name)),
                    run_link: Some(format!("https://mlflow.example.com/#/runs/{}-{n:03}", m.name)),
                    git_commit: Some(commit[..40].to_string()),
                    dataset_ref: Some(format!("s3://datasets/{}/snapshot-{n:02}.parquet", m.name)),
                    dataset_hash: Some(format!("sha256:{}", &commit[..64])),
                    parent_version: (n > 1).then_some(n - 1),
                },
                description: format!("Retrained on snapshot {n:02}."),
                tags: if n == m.versions { vec!["candidate".into()] } else { vec![] },
            };
            if n + HELD_VERSIONS > m.versions {
                // The newest versions' files are the registry's own, their digest the server's.
                let mut upload = store.start_upload(&actor)?;
                for (name, bytes) in demo_files(m, n) {
                    let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes.into())]);
                    store.upload_file(&mut upload, name, body).await?;
                }
                let input = NewVersion { artifact_uri: String::new(), artifact_digest: None, ..input };
                store.register_uploaded(&actor, m.name, input, upload).await?;
            } else {
                store.register_version(&actor, m.name, input).await?;
            }
            clock.advance(2 * DAY_MS);
        }
        for (env, sequence) in [("staging", m.staging), ("production", m.production)] {
            for &n in sequence {
                let input = DeployInput { version: n, reason: format!("promote v{n}"), expected_revision: None };
                store.deploy(&actor, m.name, env, input).await?;
                clock.advance(5 * HOUR_MS);
            }
        }
        if let Some((n, reason)) = m.quarantined {
            store.quarantine_version(&actor, m.name, n, QuarantineInput { reason: reason.into() }).await?;
        }
        seed_metrics(store, &actor, m, live.clock.now_ms()).await?;
    }
    Ok(Some(credentials))
}

/// Deterministic noise in `-0.5..0.5`.
fn noise(seed: i64, i: i64) -> f64 {
    ((i as f64 * 12.9898 + seed as f64 * 78.233).sin() * 43_758.545).fract().abs() - 0.5
}

/// Guardrails per environment (the threshold rules enforced, a comparison with the baseline
/// observed), evaluation curves for every version, and a day of live latency
/// and error rate for every version that was live; the first model's current production version
/// has a latency regression in its last hour, so the demo shows a failing version.
async fn seed_metrics(store: &Store, actor: &Caller, m: &DemoModel, now: i64) -> anyhow::Result<()> {
    let rule = |environment: &str, metric: &str, source, aggregation, window, comparator, threshold, severity| {
        GuardrailInput {
            environment: environment.into(),
            metric: metric.into(),
            source,
            aggregation: Some(aggregation),
            window,
            comparator: Some(comparator),
            threshold: Some(threshold),
            comparison: None,
            severity,
            enforced: Some(true),
        }
    };
    use Aggregation::*;
    use Comparator::*;
    for input in [
        rule(
            "production",
            "latency_ms",
            MetricSource::Live,
            P99,
            Window::Points(100),
            AtMost,
            250.0,
            Severity::Failing,
        ),
        rule("production", "error_rate", MetricSource::Live, Mean, Window::Points(50), AtMost, 0.02, Severity::Warning),
        rule("production", "accuracy", MetricSource::Eval, Last, Window::Points(1), AtLeast, 0.9, Severity::Warning),
        rule("staging", "latency_ms", MetricSource::Live, P95, Window::Points(100), AtMost, 300.0, Severity::Warning),
    ] {
        store.create_guardrail(actor, m.name, input).await?;
    }
    let comparison = Comparison {
        direction: Direction::HigherIsWorse,
        tolerance: Tolerance::Relative(0.25),
        test: ComparisonTest::Sequential,
        min_points: 10,
        confidence: 0.95,
    };
    let against_baseline = GuardrailInput {
        environment: "production".into(),
        metric: "latency_ms".into(),
        source: MetricSource::Live,
        aggregation: None,
        window: Window::Minutes(60),
        comparator: None,
        threshold: None,
        comparison: Some(comparison),
        severity: Severity::Failing,
        enforced: None,
    };
    store.create_guardrail(actor, m.name, against_baseline).await?;
    let seed = m.name.len() as i64;
    for n in 1..=m.versions {
        let plateau = 0.86 + 0.012 * n as f64 - if m.quarantined.is_some_and(|(q, _)| q == n) { 0.05 } else { 0.0 };
        let points = (0..120)
            .flat_map(|step| {
                let progress = 1.0 - (-(step as f64) / 25.0).exp();
                let wobble = noise(seed + n, step) * 0.01;
                [
                    NewMetricPoint {
                        key: "accuracy".into(),
                        value: 0.5 + (plateau - 0.5) * progress + wobble,
                        step: Some(step),
                        timestamp: None,
                        source: MetricSource::Eval,
                        environment: None,
                    },
                    NewMetricPoint {
                        key: "loss".into(),
                        value: 0.25 + 0.9 * (-(step as f64) / 30.0).exp() + wobble * 2.0,
                        step: Some(step),
                        timestamp: None,
                        source: MetricSource::Eval,
                        environment: None,
                    },
                ]
            })
            .collect();
        store.ingest_metrics(actor, m.name, n, MetricBatch { points }).await?;
    }
    let current = m.production.last().copied();
    for (environment, versions) in [("staging", m.staging), ("production", m.production)] {
        for &n in versions.iter().rev().take(2) {
            let regression = m.name == "fraud-detector" && environment == "production" && Some(n) == current;
            let points = (0..288)
                .flat_map(|i| {
                    let at = now - DAY_MS + i * 5 * 60_000;
                    let base = 120.0 + 8.0 * n as f64 + 40.0 * noise(seed * 7 + n, i);
                    let latency = if regression && i >= 276 { base + 260.0 } else { base };
                    [("latency_ms", latency), ("error_rate", 0.008 + 0.006 * noise(seed * 3 + n, i))].map(
                        |(key, value)| NewMetricPoint {
                            key: key.into(),
                            value,
                            step: Some(i),
                            timestamp: Some(at),
                            source: MetricSource::Live,
                            environment: Some(environment.into()),
                        },
                    )
                })
                .collect();
            store.ingest_metrics(actor, m.name, n, MetricBatch { points }).await?;
        }
    }
    Ok(())
}

/// 16 random letters and digits.
fn random_password() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(16).map(char::from).collect()
}

/// Prints the demo sign-ins once, on first run.
pub fn print_credentials(users: &[Credentials], from_environment: bool) {
    println!(
        "\nDemo users (shown once{}):",
        if from_environment { "; password from MODELGATE_DEMO_PASSWORD" } else { "" }
    );
    for c in users {
        println!("  {:<11} {:<18} role {}", c.username, c.password, c.role.as_str());
    }
    println!();
}
