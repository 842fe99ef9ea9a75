//! The model page's guardrails: the rules per environment, and the forms that add, edit and remove them.

use leptos::prelude::*;

use crate::domain::{Aggregation, Comparator, Guardrail, MetricSource, Severity, Window};
use crate::server_fns::{RemoveGuardrail, SaveGuardrail};
use crate::ui::components::ActionResult;

#[component]
pub fn GuardrailsPanel(
    model: String,
    guardrails: Vec<Guardrail>,
    environments: Vec<String>,
    keys: Vec<String>,
    may_manage: bool,
    save: ServerAction<SaveGuardrail>,
    remove: ServerAction<RemoveGuardrail>,
) -> impl IntoView {
    let none = guardrails.is_empty();
    let rows = guardrails
        .into_iter()
        .map(|g| {
            let (model, environments, keys) = (model.clone(), environments.clone(), keys.clone());
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
            view! {
                <tr data-guardrail=g.id>
                    <td>{g.environment.clone()}</td>
                    <td><code>{g.describe()}</code></td>
                    <td><span class=severity>{g.severity.as_str()}</span></td>
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
                "A rule reduces a metric's last N points (or last T minutes) of a version in an environment to one number and compares it with a threshold. "
                "A broken failing rule makes the version failing there; a broken warning rule, warning."
            </p>
            {if none {
                view! { <p class="muted">"No guardrails yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table compact">
                        <thead><tr><th>"Environment"</th><th>"Rule"</th><th>"Severity"</th><th>"Changed"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }.into_any()
            }}
            <ActionResult value=move || save.value().get() success="Guardrail saved; health re-evaluated."/>
            <ActionResult value=move || remove.value().get() success="Guardrail deleted."/>
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
    let aggregation = current(&|r| r.aggregation.as_str().to_string(), "p99");
    let comparator = current(&|r| r.comparator.as_str().to_string(), "<=");
    let severity = current(&|r| r.severity.as_str().to_string(), "failing");
    view! {
        <ActionForm action=save attr:class="guardrail-form">
            <input type="hidden" name="model" value=model/>
            {id.map(|id| view! { <input type="hidden" name="id" value=id/> })}
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
            <label>"Points from"
                <select name="source">
                    {choose(vec![(MetricSource::Live.as_str(), "live traffic".into()), (MetricSource::Eval.as_str(), "evaluation".into())], &source)}
                </select>
            </label>
            <label>"Aggregation"
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
            <label>"Must be"
                <select name="comparator">
                    {choose(Comparator::ALL.iter().map(|c| (c.as_str(), c.as_str().to_string())).collect(), &comparator)}
                </select>
            </label>
            <label>"Threshold"
                <input type="text" name="threshold" required inputmode="decimal" value=rule.as_ref().map(|r| r.threshold.to_string()) placeholder="250"/>
            </label>
            <label>"When broken"
                <select name="severity">
                    {choose(vec![(Severity::Failing.as_str(), "failing".into()), (Severity::Warning.as_str(), "warning".into())], &severity)}
                </select>
            </label>
            <button type="submit" class="primary">{if id.is_some() { "Save rule" } else { "Add rule" }}</button>
        </ActionForm>
    }
}
