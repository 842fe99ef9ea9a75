//! The model page: live version and deploy per environment, the versions table, the change history.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use leptos_router::hooks::use_query_map;

use super::AuditTrail;
use super::fleet::{FleetPanel, StateAtPanel};
use super::guardrails::{GuardrailActions, GuardrailsPanel};
use super::metrics::AcrossVersions;
use super::rollback::{DialogTarget, RollbackActions, RollbackDialog};
use crate::domain::{
    DeploymentEvent, DeploymentKind, Health, LiveVersion, RollbackRequest, Version, VersionMetric, percent_encoded,
};
use crate::server_fns::{DeployVersion, Failing, ModelPageData, model_overview};
use crate::ui::chart::Sparkline;
use crate::ui::components::{ActionResult, BrokenRules, ErrorPanel, HealthBadge, Loading};
use crate::ui::format;
use crate::ui::live::LiveChanges;

#[component]
pub fn ModelPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let metric = move || query.read().get("metric");
    let deploy = ServerAction::<DeployVersion>::new();
    let guardrail = GuardrailActions::new();
    let rollback = RollbackActions::new();
    let dialog: DialogTarget = RwSignal::new(None);
    // Changes of this model made anywhere (another console, the API, another replica).
    let elsewhere = LiveChanges::counter(move |c| c.model == name());
    let changes = move || (deploy.version().get(), guardrail.version(), rollback.version(), elsewhere.get());
    let overview =
        Resource::new(move || (name(), metric(), changes()), |(name, metric, _)| model_overview(name, metric));
    // The outcome note goes away by itself after a while.
    Effect::new(move |_| {
        if rollback.outcome().is_some() {
            set_timeout(
                move || {
                    rollback.request.clear();
                    rollback.break_glass.clear();
                },
                std::time::Duration::from_secs(8),
            );
        }
    });
    // A note that a request awaits approval goes once the request no longer does (a reviewer
    // decided it).
    Effect::new(move |_| {
        let decided = overview.with(|data| match (data, rollback.request.value().get_untracked()) {
            (Some(Ok(data)), Some(Ok(filed))) => {
                filed.awaits_review() && !data.rollbacks.iter().any(|r| r.id == filed.id)
            }
            _ => false,
        });
        if decided {
            rollback.request.clear();
        }
    });
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => view! { <Overview overview=o deploy guardrail dialog/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
        {move || rollback.outcome().map(|outcome| {
            // The note of what the dialog did takes focus from the dialog it closed (a refusal keeps
            // the dialog open, and focus in it).
            let note = NodeRef::<leptos::html::P>::new();
            Effect::new(move |_| {
                if let Some(note) = note.get() {
                    let _ = note.focus();
                }
            });
            match outcome {
                Ok(text) => view! { <p class="toast ok" role="status" tabindex="-1" node_ref=note>{text}</p> }.into_any(),
                Err(e) => view! { <p class="toast err" role="alert">{e.message}</p> }.into_any(),
            }
        })}
        {move || view! { <RollbackDialog model=name() target=dialog actions=rollback/> }}
    }
}

#[component]
fn Overview(
    overview: ModelPageData,
    deploy: ServerAction<DeployVersion>,
    guardrail: GuardrailActions,
    dialog: DialogTarget,
) -> impl IntoView {
    let ModelPageData {
        model,
        versions,
        history,
        may_deploy,
        audit_trail,
        metrics,
        guardrails,
        may_manage_guardrails,
        may_enforce_guardrails,
        may_roll_back,
        rollbacks,
        failing,
    } = overview;
    let trail_href = format!("/audit?model={}", percent_encoded(&model.name));
    let versions = StoredValue::new(versions.items);
    let environments: Vec<String> = model.live.iter().map(|l| l.environment.clone()).collect();
    let live_in: Vec<(String, i64)> =
        model.live.iter().filter_map(|l| Some((l.environment.clone(), l.version?))).collect();
    let health = model.health.clone();
    let trend = metrics.versions.clone();
    let key = metrics.key.clone();
    view! {
        <Title text=model.name.clone()/>
        <nav class="crumbs"><A href="/">"Models"</A>" / "<span>{model.name.clone()}</span></nav>
        <div class="page-head">
            <div>
                <h1>{model.name.clone()}</h1>
                <p class="muted">{model.description.clone()}</p>
            </div>
            <dl class="facts inline">
                <dt>"Owner"</dt><dd>{model.owner_team.clone()}</dd>
                <dt>"Versions"</dt><dd>{model.version_count}</dd>
                <dt>"Tags"</dt><dd><Tags tags=model.tags.clone()/></dd>
            </dl>
        </div>
        {failing.into_iter().map(|Failing { health: h, broken, proposal }| {
            let version_page = format!("/models/{}/versions/{}", percent_encoded(&model.name), h.version);
            let env = h.environment.clone();
            view! {
                <section class="banner danger failing-banner" role="alert" data-environment=h.environment.clone()>
                    <div>
                        <strong>{format!("{}: v{} is failing its guardrails", h.environment, h.version)}</strong>
                        <span>{format!(" since {}:", format::time(&h.since))}</span>
                        <BrokenRules broken charts=version_page.clone()/>
                        <A href=format!("{version_page}#metrics")>"See the evidence"</A>"."
                        {match proposal {
                            Some(v) => format!(" Proposed rollback target: v{v}, the version live here before."),
                            None => " No earlier healthy version to propose.".to_string(),
                        }}
                    </div>
                    {(may_roll_back && proposal.is_some()).then(|| view! {
                        <button type="button" class="danger banner-action" on:click=move |_| dialog.set(Some((env.clone(), proposal)))>
                            {format!("Roll back to v{}…", proposal.unwrap_or_default())}
                        </button>
                    })}
                </section>
            }
        }).collect_view()}
        <section class="env-grid" aria-label="Environments">
            // Keyed by revision: a card whose live version changed is rebuilt, which resets its form.
            <For
                each=move || model.live.clone()
                key=|live| (live.environment.clone(), live.revision)
                let(live)
            >
                <EnvironmentCard
                    health=health.iter().find(|h| h.environment == live.environment).map(|h| h.health)
                    rollbacks=rollbacks.iter().filter(|r| r.environment == live.environment).cloned().collect()
                    live versions=versions.get_value() deploy may_deploy may_roll_back dialog/>
            </For>
        </section>
        <ActionResult value=move || deploy.value().get() success="Deployed."/>
        <VersionsTable model=model.name.clone() versions=versions.get_value() key trend/>
        <AcrossVersions model=model.name.clone() metrics=metrics.clone() guardrails=guardrails.clone()/>
        <GuardrailsPanel model=model.name.clone() guardrails environments keys=metrics.keys live=live_in
            may_manage=may_manage_guardrails may_enforce=may_enforce_guardrails actions=guardrail/>
        <History events=history.items/>
        <StateAtPanel model=model.name.clone()/>
        {audit_trail.map(|entries| view! { <AuditTrail entries all_href=trail_href/> })}
    }
}

#[component]
fn EnvironmentCard(
    live: LiveVersion,
    health: Option<Health>,
    versions: Vec<Version>,
    rollbacks: Vec<RollbackRequest>,
    deploy: ServerAction<DeployVersion>,
    may_deploy: bool,
    may_roll_back: bool,
    dialog: DialogTarget,
) -> impl IntoView {
    let version_href = live.version.map(|v| format!("/models/{}/versions/{v}", percent_encoded(&live.model)));
    let current = live.version;
    let env = live.environment.clone();
    let dialog_env = env.clone();
    let form_env = env.clone();
    let form_model = live.model.clone();
    view! {
        <article class="panel env-card" data-env=env.clone()>
            <header>
                <h2>{env.clone()}</h2>
                <span class="pill">"rev "{live.revision}</span>
            </header>
            {current.map(|_| view! { <p class="env-health">"health "<HealthBadge health=health.unwrap_or_default()/></p> })}
            <p class="live-version">
                {match version_href {
                    Some(href) => view! { <A href=href attr:class="big">{format::version(current)}</A> }.into_any(),
                    None => view! { <span class="big muted">"nothing live"</span> }.into_any(),
                }}
            </p>
            <p class="muted small">
                {live.updated_at.as_deref().map(format::time)}
                {live.updated_by.map(|by| format!(" by {by}"))}
            </p>
            <FleetPanel model=live.model.clone() environment=env.clone()/>
            {rollbacks.into_iter().map(|r| view! { <PendingRollback request=r/> }).collect_view()}
            {(may_roll_back && current.is_some()).then(|| view! {
                <button type="button" class="roll-back" on:click=move |_| dialog.set(Some((dialog_env.clone(), None)))>
                    "Roll back…"
                </button>
            })}
            {may_deploy.then(|| view! {
            <ActionForm action=deploy attr:class="deploy-form">
                <input type="hidden" name="model" value=form_model/>
                <input type="hidden" name="environment" value=form_env/>
                <label>
                    "Version"
                    <select name="version" required>
                        <option value="" selected disabled>"Choose…"</option>
                        {versions.into_iter().map(|v| {
                            let blocker = v.deploy_blocker();
                            let is_live = Some(v.number) == current;
                            let label = match (&blocker, is_live) {
                                (_, true) => format!("v{} (live)", v.number),
                                (Some(_), _) => format!("v{} (blocked)", v.number),
                                _ => format!("v{}", v.number),
                            };
                            view! {
                                <option value=v.number disabled=blocker.is_some() || is_live title=blocker.unwrap_or_default()>
                                    {label}
                                </option>
                            }
                        }).collect_view()}
                    </select>
                </label>
                <label>"Reason"<input type="text" name="reason" placeholder="Why this change?" maxlength="1000"/></label>
                <button type="submit" class="primary">"Deploy"</button>
            </ActionForm>
            })}
        </article>
    }
}

/// A rollback of this environment waiting for a reviewer, on its environment card.
#[component]
fn PendingRollback(request: RollbackRequest) -> impl IntoView {
    let text = if request.needs_acknowledgement() {
        format!(
            "Break glass to v{} by {}: awaiting a reviewer's acknowledgement",
            request.to_version, request.requested_by
        )
    } else {
        format!(
            "Rollback #{} to v{} awaits approval: {} of {}, until {}",
            request.id,
            request.to_version,
            request.approvals,
            request.approvals_required,
            format::time(&request.expires_at)
        )
    };
    let class = if request.needs_acknowledgement() { "pending-rollback danger" } else { "pending-rollback" };
    view! {
        <p class=class data-rollback=request.id>
            {text}" · "<A href="/reviews">"Review queue"</A>
        </p>
    }
}

#[component]
fn VersionsTable(
    model: String,
    versions: Vec<Version>,
    key: Option<String>,
    trend: Vec<VersionMetric>,
) -> impl IntoView {
    let key_label = key.clone().unwrap_or_else(|| "Key metric".into());
    let (filter, set_filter) = signal(String::new());
    let rows = versions.into_iter().map(|v| {
        let haystack = format!("v{} {} {} {} {}", v.number, v.framework, v.description, v.tags.join(" "), v.created_by).to_lowercase();
        let visible = move || filter.with(|f| f.is_empty() || haystack.contains(&f.to_lowercase()));
        let href = format!("/models/{}/versions/{}", percent_encoded(&model), v.number);
        let status = version_status(&v);
        let metric = trend.iter().find(|m| m.version == v.number).cloned();
        let key = key.clone().unwrap_or_default();
        let health = v.health.iter().map(|h| view! {
            <span class="health-chip" title=format!("{} since {}", h.environment, format::time(&h.since))>
                <span class="env-name">{h.environment.clone()}</span><HealthBadge health=h.health/>
            </span>
        }).collect_view();
        view! {
            <tr data-version=v.number class:hidden=move || !visible()>
                <td><A href=href attr:class="strong">{format!("v{}", v.number)}</A></td>
                <td class="muted created" title=format::time(&v.created_at)>{v.created_at.get(..10).unwrap_or_default().to_string()}</td>
                <td class="by">{v.created_by.clone()}</td>
                <td><code>{v.artifact_digest.as_deref().map(format::short_digest).unwrap_or_else(|| "—".into())}</code></td>
                <td>{v.framework.clone()}</td>
                <td>{status}</td>
                <td>{health}</td>
                <td class="metric-cell">{metric.map(|m| view! {
                    <Sparkline values=m.trend label=format!("{key} of v{}: last {}", v.number, m.last)/>
                    <span class="metric-last">{format::compact(m.last)}</span>
                })}</td>
                <td class="muted clip" title=v.description.clone()>{v.description.clone()}</td>
            </tr>
        }
    }).collect_view();
    view! {
        <section class="panel flush">
            <header class="panel-head">
                <h2>"Versions"</h2>
                <input type="search" class="filter" placeholder="Filter versions…" aria-label="Filter versions"
                    on:input=move |ev| set_filter.set(event_target_value(&ev)) prop:value=filter/>
            </header>
            <table class="table" id="versions">
                <thead>
                    <tr>
                        <th scope="col">"Version"</th><th scope="col">"Created"</th><th scope="col">"By"</th>
                        <th scope="col">"Digest"</th><th scope="col">"Framework"</th><th scope="col">"Status"</th>
                        <th scope="col">"Health"</th><th scope="col">{key_label}</th><th scope="col">"Description"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}

/// Badges for a version: where it is live, or why it cannot be deployed.
fn version_status(v: &Version) -> impl IntoView + use<> {
    let mut badges: Vec<(String, &'static str)> =
        v.live_in.iter().map(|e| (format!("live: {e}"), "badge live")).collect();
    if v.quarantine.is_some() {
        badges.push(("quarantined".into(), "badge danger"));
    } else if v.artifact_digest.is_none() {
        badges.push(("no digest".into(), "badge warn"));
    }
    badges.into_iter().map(|(text, class)| view! { <span class=class>{text}</span> }).collect_view()
}

#[component]
fn History(events: Vec<DeploymentEvent>) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"History"</h2>
            {if events.is_empty() {
                view! { <p class="muted">"No deployments yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline" id="history">
                        {events.into_iter().map(|e| {
                            let kind_class = match e.kind {
                                DeploymentKind::Deploy => "badge",
                                DeploymentKind::Rollback => "badge warn",
                                DeploymentKind::BreakGlass => "badge danger",
                            };
                            view! {
                                <li>
                                    <span class="env-chip"><span class="env-name">{e.environment.clone()}</span></span>
                                    <span class=kind_class>{e.kind.as_str()}</span>
                                    <span class="strong">{format!("{} → v{}", format::version(e.from_version), e.to_version)}</span>
                                    <span class="muted">{format!(" by {} · {}", e.actor, format::time(&e.created_at))}</span>
                                    {e.request.map(|id| view! { <span class="muted">{format!(" · request #{id}")}</span> })}
                                    {e.rollout.map(|r| view! { <span class="muted" data-rollout=r.as_str()>{format!(" · fleet {}", r.label())}</span> })}
                                    {e.converged_at.as_deref().map(|at| view! { <span class="muted">{format!(" {}", format::time(at))}</span> })}
                                    {(!e.reason.is_empty()).then(|| view! { <q class="reason">{e.reason.clone()}</q> })}
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn Tags(tags: Vec<String>) -> impl IntoView {
    tags.into_iter().map(|t| view! { <span class="tag">{t}</span> }).collect_view()
}
