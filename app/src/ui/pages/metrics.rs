//! The version page's metrics: health per environment with every guardrail's evaluation, a chart
//! per metric key with *compare with* and a step/time axis, kept current by server-sent events.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::domain::{
    DeploymentKind, Guardrail, GuardrailCheck, HealthReport, MetricAxis, ModelMetrics, Outcome, Replay, Severity,
    percent_encoded,
};
use crate::server_fns::{ChartData, ChartLine, ChartPoint, Threshold, VersionMetricsData, version_metrics};
use crate::ui::chart::{BandSpan, ChartSource, Marker, MetricChart};
use crate::ui::components::{ErrorPanel, HealthBadge, Loading};
use crate::ui::format;

/// The version page's metrics, loaded from the page's URL (`?compare=`, `?axis=`) alongside the
/// version itself (created at page level, so re-rendering the version never loads them twice);
/// `reloads` refetches them.
pub fn version_metrics_resource(
    model: impl Fn() -> String + Send + Sync + 'static,
    number: impl Fn() -> i64 + Send + Sync + 'static,
    reloads: ReadSignal<u64>,
) -> Resource<Result<VersionMetricsData, crate::error::ApiError>> {
    let query = use_query_map();
    let compare = move || query.read().get("compare").and_then(|c| c.parse::<i64>().ok());
    let replay = move || query.read().get("replay").and_then(|c| c.parse::<i64>().ok());
    let axis = move || match query.read().get("axis").as_deref() {
        Some("time") => Some(MetricAxis::Time),
        Some("step") => Some(MetricAxis::Step),
        _ => None,
    };
    Resource::new(
        move || (model(), number(), compare(), axis(), replay(), reloads.get()),
        |(model, number, compare, axis, replay, _)| version_metrics(model, number, compare, axis, replay),
    )
}

#[component]
pub fn VersionMetrics(
    model: String,
    number: i64,
    data: Resource<Result<VersionMetricsData, crate::error::ApiError>>,
    set_reloads: WriteSignal<u64>,
) -> impl IntoView {
    let (updates, set_updates) = signal((0u64, Vec::<String>::new()));
    live_updates(&model, number, data, set_updates, set_reloads);
    view! {
        <section class="panel metrics" id="metrics" aria-labelledby="metrics-title">
            <h2 id="metrics-title">"Metrics"</h2>
            <Transition fallback=Loading>
                {move || {
                    let model = model.clone();
                    Suspend::new(async move {
                        match data.await {
                            Ok(d) => view! { <MetricsBody data=d model number updates/> }.into_any(),
                            Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                        }
                    })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn MetricsBody(
    data: VersionMetricsData,
    model: String,
    number: i64,
    updates: ReadSignal<(u64, Vec<String>)>,
) -> impl IntoView {
    let markers: Vec<Marker> = data
        .events
        .iter()
        .filter_map(|e| {
            let arrived = e.to_version == number;
            let verb = match (e.kind, arrived) {
                (DeploymentKind::Rollback, true) => "rolled back to here",
                (DeploymentKind::Rollback, false) => "rolled back from here",
                (DeploymentKind::BreakGlass, _) => "break glass",
                (DeploymentKind::Deploy, true) => "deployed",
                (DeploymentKind::Deploy, false) => "replaced",
            };
            Some(Marker {
                at_ms: format::epoch_ms(&e.created_at)?,
                label: format!("{verb} · {}", e.environment),
                rollback: e.kind != DeploymentKind::Deploy,
            })
        })
        .collect();
    let source = ChartSource { model: model.clone(), number, compare: data.compare };
    let axis_choice = |value: &'static str, label: &'static str, current: MetricAxis| {
        let checked = (value == "time") == (current == MetricAxis::Time);
        view! { <label class="inline"><input type="radio" name="axis" value=value checked=checked/>{label}</label> }
    };
    let has_charts = !data.charts.is_empty();
    // A link to a chart (`#chart-latency_ms`, from a failing banner or a review) lands on it once it
    // is drawn: the browser looked for it before the page had it.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let Ok(hash) = window().location().hash() else { return };
        let id = js_sys::decode_uri_component(hash.trim_start_matches('#')).map(String::from).unwrap_or_default();
        if let Some(target) = (!id.is_empty()).then(|| document().get_element_by_id(&id)).flatten() {
            target.scroll_into_view();
        }
    });
    let band = data.replay.as_ref().map(|r| {
        let spans = r
            .spans
            .iter()
            .filter_map(|s| {
                Some(BandSpan {
                    from_ms: format::epoch_ms(&s.from)?,
                    to_ms: format::epoch_ms(&s.to)?,
                    outcome: s.outcome,
                })
            })
            .collect::<Vec<_>>();
        (r.guardrail.metric.clone(), spans)
    });
    let replay_link = {
        let model = model.clone();
        move |c: &GuardrailCheck| {
            let chart = crate::ui::chart::anchor(&c.guardrail.metric);
            format!("/models/{}/versions/{number}?replay={}#{chart}", percent_encoded(&model), c.guardrail.id)
        }
    };
    let replay = data.replay;
    view! {
        <HealthReports reports=data.reports replay_link/>
        <form class="chart-controls" method="get" id="chart-controls">
            <label class="inline">"Compare with "
                <select name="compare" id="compare">
                    <option value="" selected=data.compare.is_none()>"—"</option>
                    {data.others.iter().map(|n| view! {
                        <option value=n.to_string() selected=data.compare == Some(*n)>{format!("v{n}")}</option>
                    }).collect_view()}
                </select>
            </label>
            <fieldset class="inline">
                <legend>"Axis"</legend>
                {axis_choice("step", "Step", data.axis)}
                {axis_choice("time", "Time", data.axis)}
            </fieldset>
            <button type="submit">"Show"</button>
            <a class="muted" href=format!("/api/v1/models/{}/versions/{number}/metrics", percent_encoded(&model))>"All series (JSON)"</a>
        </form>
        {if has_charts {
            view! {
                <div class="charts">
                    {data.charts.into_iter().map(|chart| {
                        let csv = format!(
                            "/api/v1/models/{}/versions/{number}/metrics/{}.csv",
                            percent_encoded(&model),
                            percent_encoded(&chart.key)
                        );
                        let anchor = crate::ui::chart::anchor(&chart.key);
                        let chart_key = chart.key.clone();
                        view! {
                            <div class="chart-cell" id=anchor>
                                <MetricChart band=band.clone().filter(|(metric, _)| *metric == chart.key).map(|(_, spans)| spans).unwrap_or_default()
                                    data=chart markers=markers.clone() source=source.clone() updates/>
                                <a class="csv-link" href=csv download="">"Raw points (CSV)"</a>
                                {replay.clone().filter(|r| r.guardrail.metric == chart_key).map(|r| view! { <ReplaySummary replay=r/> })}
                            </div>
                        }
                    }).collect_view()}
                </div>
            }.into_any()
        } else {
            view! {
                <p class="muted" id="no-metrics">
                    "No metric points yet. Push them with "
                    <code>{format!("POST /api/v1/models/{}/versions/{number}/metrics", percent_encoded(&model))}</code>"."
                </p>
            }.into_any()
        }}
    }
}

/// One metric across the model's versions: a chart of each version's last value against its number.
#[component]
pub fn AcrossVersions(model: String, metrics: ModelMetrics, guardrails: Vec<Guardrail>) -> impl IntoView {
    let Some(key) = metrics.key.clone() else {
        return view! {
            <section class="panel" id="across-versions">
                <h2>"Metrics across versions"</h2>
                <p class="muted">"No version has metric points yet."</p>
            </section>
        }
        .into_any();
    };
    let points = metrics.versions.iter().map(|v| ChartPoint(v.version, v.last)).collect::<Vec<_>>();
    let data = ChartData {
        key: key.clone(),
        axis: MetricAxis::Step,
        lines: vec![ChartLine {
            label: format!("last {key} of each version"),
            compared: false,
            total: points.len() as i64,
            downsampled: false,
            points,
        }],
        thresholds: Threshold::of_metric(&guardrails, &key),
    };
    view! {
        <section class="panel" id="across-versions">
            <header class="panel-head">
                <h2>"Metrics across versions"</h2>
                <form method="get" action=format!("/models/{}", percent_encoded(&model))>
                    <label class="inline">"Metric "
                        <select name="metric">
                            {metrics.keys.iter().map(|k| view! { <option value=k.clone() selected=*k == key>{k.clone()}</option> }).collect_view()}
                        </select>
                    </label>
                    <button type="submit">"Show"</button>
                </form>
            </header>
            <MetricChart data per_version=true/>
        </section>
    }
    .into_any()
}

/// The badge class and word of a check's outcome.
fn outcome_badge(c: &GuardrailCheck) -> (&'static str, &'static str) {
    match c.outcome {
        Outcome::Pass => ("ok", "pass"),
        Outcome::Fail if c.guardrail.severity == Severity::Warning => ("warn", "warning"),
        Outcome::Fail => ("danger", "fail"),
        Outcome::Inconclusive => ("muted", "inconclusive"),
        Outcome::NoData => ("muted", "no data"),
    }
}

/// Each environment's verdict and the rules behind it: threshold rules with their aggregate,
/// comparisons with their evidence; observed rules marked (they never count), each replayable.
#[component]
fn HealthReports(
    reports: Vec<HealthReport>,
    replay_link: impl Fn(&GuardrailCheck) -> String + 'static,
) -> impl IntoView {
    if reports.is_empty() {
        return view! { <p class="muted">"No guardrails on this model yet; its versions' health is unknown."</p> }
            .into_any();
    }
    view! {
        <div class="health-reports">
            {reports.into_iter().map(|r| view! {
                <div class="health-report" data-environment=r.environment.clone()>
                    <h3>{r.environment.clone()}" "<HealthBadge health=r.health/></h3>
                    <table class="table compact">
                        <thead><tr><th>"Guardrail"</th><th>"Window"</th><th>"Observed"</th><th>"Result"</th><th></th></tr></thead>
                        <tbody>
                            {r.checks.into_iter().map(|c| {
                                let (class, verdict) = outcome_badge(&c);
                                let observed = if c.evidence.is_some() {
                                    view! { <span class="evidence">{c.evidence_text()}</span> }.into_any()
                                } else {
                                    let exact = c.observed.map(|v| v.to_string());
                                    view! { <span title=exact>{c.observed.map_or_else(|| "—".to_string(), format::significant)}</span> }.into_any()
                                };
                                let observing = (!c.guardrail.enforced).then(|| view! { <span class="badge muted">"observing"</span> });
                                view! {
                                    <tr data-guardrail=c.guardrail.id data-outcome=c.outcome.as_str()>
                                        <td><code>{c.guardrail.describe()}</code></td>
                                        <td>{format!("{} point{}", c.points, if c.points == 1 { "" } else { "s" })}</td>
                                        <td>{observed}</td>
                                        <td><span class=format!("badge {class}")>{verdict}</span>" "{observing}</td>
                                        <td><a class="replay-link" href=replay_link(&c)>"Replay"</a></td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }).collect_view()}
        </div>
    }
    .into_any()
}

/// What a rule would have said over this version's history, under the chart that draws it as a
/// band: when it would first have failed, how many evaluations, and the band's colours.
#[component]
fn ReplaySummary(replay: Replay) -> impl IntoView {
    let verdict = match &replay.first_failure {
        Some(at) => format!("would first have failed at {}", format::time(at)),
        None => "would never have failed".to_string(),
    };
    let baseline = replay.baseline.map(|b| {
        let how = if b.concurrent { "over the same minutes" } else { "its last window before the switch" };
        format!(" Baseline: v{} ({how}).", b.version)
    });
    view! {
        <div class="replay-summary" role="status" data-first-failure=replay.first_failure.clone()>
            <p>
                "Replay of "<code>{replay.guardrail.describe()}</code>" over v"{replay.version}"'s history: "
                <strong>{verdict}</strong>
                {format!(" — {} evaluations over {} points.", replay.evaluations, replay.points)}
                {baseline}
            </p>
            <ul class="legend band-legend">
                {[Outcome::Pass, Outcome::Fail, Outcome::Inconclusive, Outcome::NoData].into_iter().map(|o| view! {
                    <li><span class=format!("swatch band-{}", o.as_str())></span>{o.as_str().replace('_', " ")}</li>
                }).collect_view()}
            </ul>
        </div>
    }
}

/// Subscribes to the version's server-sent events: new points re-query the charts of their keys
/// (or the whole section when a key is new); a health change reloads the section.
fn live_updates(
    model: &str,
    number: i64,
    data: Resource<Result<VersionMetricsData, crate::error::ApiError>>,
    set_updates: WriteSignal<(u64, Vec<String>)>,
    set_reloads: WriteSignal<u64>,
) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;
        let url = format!("/api/v1/events?model={}&version={number}", percent_encoded(model));
        let Ok(source) = web_sys::EventSource::new(&url) else { return };
        let on_metrics = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let Some(text) = ev.data().as_string() else { return };
            let Ok(crate::domain::ServerEvent::Metrics { keys, .. }) = serde_json::from_str(&text) else { return };
            let known = data
                .get_untracked()
                .and_then(|d| d.ok())
                .is_some_and(|d| keys.iter().all(|k| d.charts.iter().any(|c| &c.key == k)));
            if known {
                set_updates.update(|(n, k)| {
                    *n += 1;
                    *k = keys;
                });
            } else {
                set_reloads.update(|n| *n += 1);
            }
        });
        let on_health = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |_| set_reloads.update(|n| *n += 1));
        let _ = source.add_event_listener_with_callback("metrics", on_metrics.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("health", on_health.as_ref().unchecked_ref());
        on_metrics.forget();
        on_health.forget();
        crate::ui::live::close_when_left(&source);
        let source = StoredValue::new_local(source);
        on_cleanup(move || source.with_value(|s| s.close()));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (model, number, data, set_updates, set_reloads);
}
