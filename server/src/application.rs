//! Building and running the server: connect, migrate, load the signing keys, start the event
//! relay, webhook deliverer and periodic jobs, seed, bind, serve until shut down.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use app::session_cookie::CookiePolicy;
use axum::Router;
use leptos::prelude::LeptosOptions;
use tokio::net::TcpListener;

use crate::artifacts::Artifacts;
use crate::clock::Clock;
use crate::config::{Config, MigrateMode};
use crate::db::{Db, Schema};
use crate::store::Store;
use crate::webhooks::delivery;
use crate::{demo, events, http};

/// A server bound to its port, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Arc<Store>,
    limits: http::serve::Limits,
}

impl Application {
    /// Binds the address (port 0 picks a free port; see [`Application::local_addr`]), connects and
    /// migrates the database (or waits for its migrations), seeds demo data if asked.
    pub async fn build(config: &Config, clock: Clock) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(config.addr).with_context(|| format!("binding {}", config.addr))?;
        listener.set_nonblocking(true)?;
        let db =
            Db::connect(&config.database_url, config.db_max_connections).await.context("connecting to the database")?;
        if config.migrate == MigrateMode::Apply {
            db.migrate().await.context("migrating the database")?;
        }
        let schema = wait_for_migrations(&db, &listener).await.context("reading the database's migrations")?;
        let listener = TcpListener::from_std(listener)?;
        if !schema.newer.is_empty() {
            tracing::warn!(newer = ?schema.newer, "the database holds migrations of a newer release; running on its schema");
        }
        let audit = config.audit.audit_log(clock.clone()).context("loading the audit signing key")?;
        let artifacts = Artifacts::open(&config.artifact_store)
            .with_context(|| format!("opening the artifact store {}", config.artifact_store))?;
        let signer = config.fleet.signer().context("loading the assignment signing key")?;
        let store = Store::new(db, clock, audit)
            .with_identity(config.auth_settings())
            .with_part(config.webhooks.targets())
            .with_part(artifacts)
            .with_part(signer);
        let store = Arc::new(store);
        events::start_relay(&store.events, &store.db, &config.database_url)
            .await
            .context("starting the event relay")?;
        delivery::spawn_deliverer(Arc::downgrade(&store), config.webhooks.retry_policy(), config.webhooks.targets());
        // A checkpoint when entries were appended since the last one, every N minutes.
        let minutes = std::time::Duration::from_secs(config.audit.checkpoint_minutes.max(1) * 60);
        spawn_every(Arc::downgrade(&store), minutes, "signing the periodic audit checkpoint", |store| async move {
            store.checkpoint_if_behind().await
        });
        // The head is signed into the witness file soon after it moves.
        let witness = std::time::Duration::from_millis(config.audit.witness_ms.max(1));
        spawn_every(
            Arc::downgrade(&store),
            witness,
            "keeping the audit checkpoint outside the database",
            |store| async move { store.keep_witness().await },
        );
        // Audited writes queue their entries' search terms; they join the term index in batches.
        let moment = std::time::Duration::from_millis(config.audit.index_ms.max(1));
        spawn_every(Arc::downgrade(&store), moment, "indexing audit search terms", |store| async move {
            store.index_audit_terms().await.map(|_| ())
        });
        // Time windows move on without new points: a silent series' rules are re-evaluated.
        let minute = std::time::Duration::from_secs(60);
        spawn_every(Arc::downgrade(&store), minute, "re-evaluating time-window guardrails", |store| async move {
            store.reevaluate_time_windows().await.map(|_| ())
        });
        // Requests past their time-to-live are closed as expired (they already read as expired).
        spawn_every(Arc::downgrade(&store), minute, "expiring rollback requests", |store| async move {
            store.expire_rollbacks().await.map(|_| ())
        });
        // Agents silent for three heartbeats go lost; rollouts past their deadline are decided.
        let sweep = std::time::Duration::from_millis(config.fleet.sweep_ms.max(1));
        spawn_every(Arc::downgrade(&store), sweep, "sweeping the serving fleet", |store| async move {
            store.sweep_fleet().await.map(|_| ())
        });
        let hour = std::time::Duration::from_secs(3600);
        spawn_every(Arc::downgrade(&store), hour, "forgetting old idempotency keys", |store| async move {
            store.forget_idempotency_keys().await
        });
        if config.demo
            && let Some(users) = demo::seed(&store, config.demo_password.as_deref()).await?
        {
            tracing::info!("seeded the demo data set");
            demo::print_credentials(&users, config.demo_password.is_some());
        }
        let addr = listener.local_addr()?;
        let leptos = LeptosOptions::builder()
            .output_name("modelgate")
            .site_root(config.site_root.as_str())
            .site_pkg_dir(sealed_site_dir(&config.site_root))
            .site_addr(addr)
            .build();
        let cookies = CookiePolicy { secure: config.secure_cookies };
        let request_timeout = std::time::Duration::from_secs(config.request_timeout_secs.max(1));
        let router =
            http::router(store.clone(), leptos, http::prometheus(), config.max_body_bytes, cookies, request_timeout);
        let limits = http::serve::Limits {
            connections: config.max_connections,
            per_address: config.max_connections_per_address.max(1),
            head: std::time::Duration::from_secs(config.header_timeout_secs.max(1)),
        };
        Ok(Self { listener, router, store, limits })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        http::serve::serve(self.listener, self.router, self.limits, shutdown).await?;
        self.store.db.close().await;
        Ok(())
    }
}

/// Waits until the database holds every migration of this binary. Meanwhile the listener (a
/// duplicate of it, so the socket stays bound throughout) answers probes: `/healthz` ok, anything
/// else 503 naming the migrations awaited — a replica waiting for its migration job is alive but
/// not ready.
async fn wait_for_migrations(db: &Db, listener: &std::net::TcpListener) -> anyhow::Result<Schema> {
    let schema = db.schema().await?;
    if schema.pending.is_empty() {
        return Ok(schema);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let waiting = axum::serve(TcpListener::from_std(listener.try_clone()?)?, http::waiting_router(&schema.pending))
        .with_graceful_shutdown(async {
            stopped.await.ok();
        });
    let answering = tokio::spawn(waiting.into_future());
    let schema = db.wait_for_migrations(std::time::Duration::from_secs(2)).await;
    stop.send(()).ok();
    answering.await??;
    Ok(schema?)
}

/// Runs `job` every `period` (the first time one period from now) until the store is gone or closed;
/// a failure is logged as `what` and the next tick tries again.
fn spawn_every<F, Fut>(store: std::sync::Weak<Store>, period: std::time::Duration, what: &'static str, job: F)
where
    F: Fn(Arc<Store>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), app::error::ApiError>> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade().filter(|s| !s.db.pool().is_closed()) else { return };
            if let Err(e) = job(store).await {
                tracing::warn!(error = %e.message, "{what} failed");
            }
        }
    });
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Where under the site root the console's files are: `pkg/<digest>`, named by the `build-id` file
/// `scripts/build.sh` writes beside it, or `pkg` for a site built otherwise.
fn sealed_site_dir(site_root: &str) -> String {
    match std::fs::read_to_string(std::path::Path::new(site_root).join("build-id")) {
        Ok(id) if !id.trim().is_empty() => format!("pkg/{}", id.trim()),
        _ => "pkg".to_string(),
    }
}
