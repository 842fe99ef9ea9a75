//! The demo data set: a few models with versions, deployments and history in both environments.

use std::collections::BTreeMap;

use app::backend::{Deployments, Registry};
use app::domain::*;
use sha2::{Digest, Sha256};

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

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Seeds the demo data unless the registry already has models; returns whether it seeded.
/// The history is spread over the last 90 days, as if the models had been in use for a while.
pub async fn seed(live: &Store) -> anyhow::Result<bool> {
    let existing = live.list_models(ModelQuery { limit: Some(1), ..Default::default() }).await?;
    if existing.total > 0 {
        return Ok(false);
    }
    let clock = Clock::manual(live.clock.now_ms() - 90 * DAY_MS);
    let store = &Store::new(live.db.clone(), clock.clone());
    let actor = Actor { name: "demo-seed".into() };
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
            store
                .register_version(
                    &actor,
                    m.name,
                    NewVersion {
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
                    },
                )
                .await?;
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
    }
    Ok(true)
}
