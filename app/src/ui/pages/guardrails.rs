//! The model page's guardrails: the rules per environment, and the forms that add, edit and remove them.

use leptos::prelude::*;

use crate::domain::{
    Aggregation, Comparator, ComparisonTest, Direction, Guardrail, MetricSource, Severity, Tolerance, Window,
    percent_encoded,
};
use crate::server_fns::{EnforceGuardrail, RemoveGuardrail, SaveGuardrail};
use crate::ui::components::ActionResult;

/// The model page's actions on guardrails.
#[derive(Clone, Copy)]
pub struct GuardrailActions {
    pub save: ServerAction<SaveGuardrail>,
    pub remove: ServerAction<RemoveGuardrail>,
    pub enforce: ServerAction<EnforceGuardrail>,
}

impl GuardrailActions {
    pub fn new() -> Self {
        Self { save: ServerAction::new(), remove: ServerAction::new(), enforce: ServerAction::new() }
    }

    /// Changes with every action that went through (the page reloads its data on it).
    pub fn version(&self) -> (usize, usize, usize) {
        (self.save.version().get(), self.remove.version().get(), self.enforce.version().get())
    }
}

#[component]
pub fn GuardrailsPanel(
    model: String,
    guardrails: Vec<Guardrail>,
    environments: Vec<String>,
    keys: Vec<String>,
    may_manage: bool,
    may_enforce: bool,
    /// The version live in each environment, whose history a rule is replayed on.
    live: Vec<(String, i64)>,
    actions: GuardrailActions,
) -> impl IntoView {
    let GuardrailActions { save, remove, enforce } = actions;
    let none = guardrails.is_empty();
    let rows = guardrails
        .into_iter()
        .map(|g| {
            let (model, environments, keys) = (model.clone(), environments.clone(), keys.clone());
            let page = model.clone();
            let edit = may_manage.then(|| {
                view! {
                    // Closes again once a save went through.
                    <details class="inline-edit" prop:open=move || {
                        save.version().track();
                        false
                    }>
                        <summary>"Edit"</summary>
                        <GuardrailForm model=model.clone() rule=Some(g.clone()) environments keys save/>
                    </details>
                    <ActionForm action=remove attr:class="inline">
                        <input type="hidden" name="model" value=model/>
                        <input type="hidden" name="id" value=g.id/>
                        <button type="submit" class="link danger">"Delete"</button>
                    </ActionForm>
                }
            });
            let severity = if g.severity == Severity::Failing { "badge danger" } else { "badge warn" };
            let replay = live.iter().find(|(env, _)| *env == g.environment).map(|(_, number)| {
                let chart = crate::ui::chart::anchor(&g.metric);
                let href = format!("/models/{}/versions/{number}?replay={}#{chart}", percent_encoded(&page), g.id);
                view! { <a class="replay-link" href=href>{format!("Replay on v{number}")}</a> }
            });
            let mode = if g.enforced {
                view! { <span class="badge ok" title="Counts toward health">"enforced"</span> }.into_any()
            } else {
                let button = may_enforce.then(|| view! {
                    <ActionForm action=enforce attr:class="inline">
                        <input type="hidden" name="model" value=page.clone()/>
                        <input type="hidden" name="id" value=g.id/>
                        <button type="submit" class="link">"Enforce"</button>
                    </ActionForm>
                });
                view! {
                    <span class="badge muted" title="Evaluated and recorded; never changes health until enforced">"observing"</span>
                    " "{button}
                }.into_any()
            };
            view! {
                <tr data-guardrail=g.id data-enforced=g.enforced.to_string()>
                    <td>{g.environment.clone()}</td>
                    <td><code>{g.describe()}</code><br/>{replay}</td>
                    <td><span class=severity>{g.severity.as_str()}</span></td>
                    <td class="mode">{mode}</td>
                    <td class="muted small changed">{g.updated_by.clone()}<br/>{crate::ui::format::time(&g.updated_at)}</td>
                    <td class="actions">{edit}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="panel" id="guardrails">
            <h2>"Guardrails"</h2>
            <p class="muted small">
                "A threshold rule reduces a metric's last N points (or last T minutes) of a version in an environment to one number and compares it with a threshold; "
                "a comparison rule tests the version's points against the version it replaced there and fails only when the shift is confidently beyond the tolerance. "
                "A failed failing rule makes the version failing there; a failed warning rule, warning. "
                "A new rule is observed (evaluated and recorded, never changing health) until an admin enforces it: replay it on history first."
            </p>
            {if none {
                view! { <p class="muted">"No guardrails yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table compact">
                        <thead><tr><th>"Environment"</th><th>"Rule"</th><th>"Severity"</th><th>"Mode"</th><th>"Changed"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }.into_any()
            }}
            <ActionResult value=move || save.value().get() success="Guardrail saved; health re-evaluated."/>
            <ActionResult value=move || remove.value().get() success="Guardrail deleted."/>
            <ActionResult value=move || enforce.value().get() success="Guardrail enforced; it now counts toward health."/>
            {may_manage.then(|| view! {
                <h3>"Add a guardrail"</h3>
                <GuardrailForm model=model.clone() rule=None environments keys save/>
            })}
        </section>
    }
}

/// The fields of a rule, filled from `rule` when editing one.
#[component]
fn GuardrailForm(
    model: String,
    rule: Option<Guardrail>,
    environments: Vec<String>,
    keys: Vec<String>,
    save: ServerAction<SaveGuardrail>,
) -> impl IntoView {
    let id = rule.as_ref().map(|r| r.id);
    let list_id = format!("metric-keys-{}", id.unwrap_or(0));
    let (window, size) = match rule.as_ref().map(|r| r.window) {
        Some(Window::Minutes(m)) => ("minutes", m),
        Some(Window::Points(n)) => ("points", n),
        None => ("points", 100),
    };
    let choose = |options: Vec<(&'static str, String)>, current: &str| {
        options
            .into_iter()
            .map(|(value, label)| view! { <option value=value selected=value == current>{label}</option> })
            .collect_view()
    };
    let current = |f: &dyn Fn(&Guardrail) -> String, default: &str| rule.as_ref().map_or(default.to_string(), f);
    let env = current(&|r| r.environment.clone(), "production");
    let source = current(&|r| r.source.as_str().to_string(), "live");
    let aggregation = current(&|r| r.aggregation.map_or("p99", Aggregation::as_str).to_string(), "p99");
    let comparator = current(&|r| r.comparator.map_or("<=", Comparator::as_str).to_string(), "<=");
    let severity = current(&|r| r.severity.as_str().to_string(), "failing");
    let threshold = rule.as_ref().and_then(|r| r.threshold).map(|t| t.to_string());
    let comparison = rule.as_ref().and_then(|r| r.comparison);
    let (kind, set_kind) = signal(if comparison.is_some() { "comparison" } else { "threshold" });
    let direction = comparison.map_or(Direction::HigherIsWorse, |c| c.direction);
    let (tolerance, tolerance_kind) = match comparison.map(|c| c.tolerance) {
        Some(Tolerance::Absolute(a)) => (a.to_string(), "absolute"),
        Some(Tolerance::Relative(r)) => (format!("{}", (r * 1e6).round() / 1e4), "relative"),
        None => ("10".to_string(), "relative"),
    };
    let test = comparison.map_or(ComparisonTest::Sequential, |c| c.test);
    let min_points = comparison.map_or(30, |c| c.min_points);
    let confidence = comparison.map_or(95.0, |c| (c.confidence * 1e4).round() / 100.0);
    let shows = move |which: &'static str| move || kind.get() == which;
    view! {
        <ActionForm action=save attr:class="guardrail-form">
            <input type="hidden" name="model" value=model/>
            {id.map(|id| view! { <input type="hidden" name="id" value=id/> })}
            <label>"Kind"
                <select name="kind" on:change=move |ev| set_kind.set(if event_target_value(&ev) == "comparison" { "comparison" } else { "threshold" })>
                    {choose(vec![("threshold", "threshold".into()), ("comparison", "vs baseline".into())], kind.get_untracked())}
                </select>
            </label>
            <label>"Environment"
                <select name="environment">
                    {environments.into_iter().map(|e| view! { <option value=e.clone() selected=e == env>{e.clone()}</option> }).collect_view()}
                </select>
            </label>
            <label>"Metric"
                <input type="text" name="metric" required maxlength="250" list=list_id.clone()
                    value=rule.as_ref().map(|r| r.metric.clone()) placeholder="latency_ms"/>
                <datalist id=list_id>{keys.into_iter().map(|k| view! { <option value=k/> }).collect_view()}</datalist>
            </label>
            <label class:hidden=shows("comparison")>"Points from"
                <select name="source">
                    {choose(vec![(MetricSource::Live.as_str(), "live traffic".into()), (MetricSource::Eval.as_str(), "evaluation".into())], &source)}
                </select>
            </label>
            <label class:hidden=shows("comparison")>"Aggregation"
                <select name="aggregation">
                    {choose(Aggregation::ALL.iter().map(|a| (a.as_str(), a.as_str().to_string())).collect(), &aggregation)}
                </select>
            </label>
            <label>"Window"
                <span class="pair">
                    <input type="number" name="window_size" min="1" required value=size/>
                    <select name="window">{choose(vec![("points", "points".into()), ("minutes", "minutes".into())], window)}</select>
                </span>
            </label>
            <label class:hidden=shows("comparison")>"Must be"
                <select name="comparator">
                    {choose(Comparator::ALL.iter().map(|c| (c.as_str(), c.as_str().to_string())).collect(), &comparator)}
                </select>
            </label>
            <label class:hidden=shows("comparison")>"Threshold"
                <input type="text" name="threshold" inputmode="decimal" value=threshold placeholder="250"/>
            </label>
            <label class:hidden=shows("threshold")>"Worse when"
                <select name="direction">
                    {choose(vec![(Direction::HigherIsWorse.as_str(), "higher".into()), (Direction::LowerIsWorse.as_str(), "lower".into())], direction.as_str())}
                </select>
            </label>
            <label class:hidden=shows("threshold")>"Tolerance"
                <span class="pair">
                    <input type="text" name="tolerance" inputmode="decimal" value=tolerance/>
                    <select name="tolerance_kind">{choose(vec![("relative", "%".into()), ("absolute", "units".into())], tolerance_kind)}</select>
                </span>
            </label>
            <label class:hidden=shows("threshold")>"Test"
                <select name="test">
                    {choose(vec![
                        (ComparisonTest::Sequential.as_str(), "sequential (any time)".into()),
                        (ComparisonTest::MannWhitney.as_str(), "Mann–Whitney (fixed window)".into()),
                    ], test.as_str())}
                </select>
            </label>
            <label class:hidden=shows("threshold")>"Min points a side"
                <input type="number" name="min_points" min="2" value=min_points/>
            </label>
            <label class:hidden=shows("threshold")>"Confidence %"
                <input type="text" name="confidence" inputmode="decimal" value=confidence.to_string()/>
            </label>
            <label>"When failed"
                <select name="severity">
                    {choose(vec![(Severity::Failing.as_str(), "failing".into()), (Severity::Warning.as_str(), "warning".into())], &severity)}
                </select>
            </label>
            <button type="submit" class="primary">{if id.is_some() { "Save rule" } else { "Add rule" }}</button>
        </ActionForm>
    }
}
