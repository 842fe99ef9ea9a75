//! The rollback dialog: the target (proposed from the environment's history), the preflight
//! checks, the live and target versions' metrics side by side, the policy and a reason — and,
//! for those allowed, break glass with a justification and the model's name typed out.

use leptos::prelude::*;

use crate::domain::{Health, MetricComparison, PreflightCheck, RollbackCandidate, RollbackPlan, RollbackRequest};
use crate::server_fns::{BreakGlassRollback, RequestRollback, RollbackDialogData, rollback_dialog};
use crate::ui::components::{ErrorPanel, HealthBadge, Loading};
use crate::ui::format;

/// The open dialog: the environment, and the target picked in it (the proposal until one is picked).
pub type DialogTarget = RwSignal<Option<(String, Option<i64>)>>;

/// The actions the dialog submits, created by the page so it can refetch after them.
#[derive(Clone, Copy)]
pub struct RollbackActions {
    pub request: ServerAction<RequestRollback>,
    pub break_glass: ServerAction<BreakGlassRollback>,
}

impl RollbackActions {
    pub fn new() -> Self {
        Self { request: ServerAction::new(), break_glass: ServerAction::new() }
    }

    /// Moves whenever either action completes.
    pub fn version(&self) -> (usize, usize) {
        (self.request.version().get(), self.break_glass.version().get())
    }

    /// What the last completed action did, in words, for the page's note.
    pub fn outcome(&self) -> Option<Result<String, crate::error::ApiError>> {
        let describe = |r: RollbackRequest| match r.status {
            crate::domain::RollbackStatus::Executed => {
                format!("Rolled back {} in {} to v{}.", r.model, r.environment, r.to_version)
            }
            _ => format!(
                "Rollback request #{} filed: it needs {} approval{} by {}.",
                r.id,
                r.approvals_required,
                if r.approvals_required == 1 { "" } else { "s" },
                format::time(&r.expires_at)
            ),
        };
        let latest = self.break_glass.value().get().or_else(|| self.request.value().get())?;
        Some(latest.map(describe))
    }
}

#[component]
pub fn RollbackDialog(model: String, target: DialogTarget, actions: RollbackActions) -> impl IntoView {
    let plan = LocalResource::new({
        let model = model.clone();
        move || {
            let (model, open) = (model.clone(), target.get());
            async move {
                match open {
                    Some((environment, to)) => Some(rollback_dialog(model, environment, to).await),
                    None => None,
                }
            }
        }
    });
    // Opening the dialog forgets the last outcome; a request that went through closes it.
    Effect::new(move |was_open: Option<bool>| {
        let open = target.with(Option::is_some);
        if open && was_open == Some(false) {
            actions.request.clear();
            actions.break_glass.clear();
        }
        open
    });
    Effect::new(move |_| {
        if matches!(actions.request.value().get(), Some(Ok(_)))
            || matches!(actions.break_glass.value().get(), Some(Ok(_)))
        {
            target.set(None);
        }
    });
    let close = move || target.set(None);
    move || {
        let (environment, _) = target.get()?;
        let model = model.clone();
        Some(view! {
            <div class="modal-backdrop" on:keydown=move |ev| if ev.key() == "Escape" { close() }>
                <section class="modal panel" role="dialog" aria-modal="true" aria-labelledby="rollback-title">
                    <header class="modal-head">
                        <h2 id="rollback-title">{format!("Roll back {model} in {environment}")}</h2>
                        <button type="button" class="link" aria-label="Close" on:click=move |_| close()>"✕"</button>
                    </header>
                    <Transition fallback=Loading>
                        {move || {
                            let (model, environment) = (model.clone(), environment.clone());
                            Suspend::new(async move {
                                match plan.await {
                                    Some(Ok(data)) => view! { <DialogBody model environment data target actions/> }.into_any(),
                                    Some(Err(e)) => view! { <ErrorPanel error=e/> }.into_any(),
                                    None => ().into_any(),
                                }
                            })
                        }}
                    </Transition>
                </section>
            </div>
        })
    }
}

#[component]
fn DialogBody(
    model: String,
    environment: String,
    data: RollbackDialogData,
    target: DialogTarget,
    actions: RollbackActions,
) -> impl IntoView {
    let RollbackDialogData { plan, may_request, may_break_glass } = data;
    let RollbackPlan {
        live,
        live_health,
        proposed,
        target: chosen,
        candidates,
        checks,
        comparison,
        policy,
        open_request,
        ..
    } = plan.clone();
    let ready = plan.ready();
    let live_version = live.version;
    let to_value = chosen.map(|v| v.to_string()).unwrap_or_default();
    let needs = policy.approvals_required;
    let policy_note = if needs == 0 {
        format!("No approval is needed in {environment}: the rollback executes at once.")
    } else {
        format!(
            "Needs {needs} approval{} by a reviewer other than you; the request expires after {} minutes.",
            if needs == 1 { "" } else { "s" },
            policy.approval_ttl_minutes
        )
    };
    let pick_env = environment.clone();
    let (glass_model, glass_env) = (model.clone(), environment.clone());
    let on_pick = move |ev: leptos::ev::Event| {
        let picked = event_target_value(&ev).parse::<i64>().ok();
        target.set(Some((pick_env.clone(), picked)));
    };
    view! {
        <div class="rollback-versions">
            <div>
                <span class="muted small">"Live now"</span>
                <p class="big">{format::version(live_version)}" "<HealthBadge health=live_health/></p>
            </div>
            <span class="arrow" aria-hidden="true">"→"</span>
            <label>
                "Roll back to"
                <select name="to_version" form="rollback-request" on:change=on_pick>
                    {candidates.iter().map(|c| candidate_option(c, proposed, chosen)).collect_view()}
                </select>
            </label>
        </div>
        {open_request.map(|r| view! {
            <p class="banner warn small">{format!("Request #{} ({} → v{}) is already open, by {}.", r.id, format::version(Some(r.from_version)), r.to_version, r.requested_by)}</p>
        })}
        <Checks checks/>
        <Comparison rows=comparison live=live_version target=chosen/>
        <p class="muted small policy-note">{policy_note}</p>
        {may_request.then(|| view! {
            <ActionForm action=actions.request attr:id="rollback-request" attr:class="rollback-form">
                <input type="hidden" name="model" value=model.clone()/>
                <input type="hidden" name="environment" value=environment.clone()/>
                <label>"Reason"<textarea name="reason" required maxlength="1000" rows="2" autofocus
                    placeholder="What is wrong with the live version?"></textarea></label>
                <div class="form-actions">
                    <button type="submit" class="primary" disabled=!ready>
                        {if needs == 0 { "Roll back now" } else { "Request rollback" }}
                    </button>
                    <button type="button" on:click=move |_| target.set(None)>"Cancel"</button>
                </div>
            </ActionForm>
        })}
        <Refusal value=move || actions.request.value().get()/>
        {may_break_glass.then(|| view! {
            <details class="break-glass">
                <summary>"Break glass…"</summary>
                <p class="small">
                    "Rolls back at once, without approval and despite any freeze. Every subscriber is alerted, "
                    "and a reviewer must acknowledge it afterwards."
                </p>
                <ActionForm action=actions.break_glass attr:class="rollback-form">
                    <input type="hidden" name="model" value=glass_model.clone()/>
                    <input type="hidden" name="environment" value=glass_env/>
                    <input type="hidden" name="to_version" value=to_value/>
                    <label>"Justification"<textarea name="justification" required minlength="20" maxlength="1000" rows="2"
                        placeholder="Why this cannot wait for a reviewer (at least 20 characters)"></textarea></label>
                    <label>{format!("Type {glass_model} to confirm")}<input type="text" name="confirm" required autocomplete="off"/></label>
                    <button type="submit" class="danger">"Break glass and roll back now"</button>
                </ActionForm>
                <Refusal value=move || actions.break_glass.value().get()/>
            </details>
        })}
    }
}

/// Why the server refused the dialog's last request, if it did (success closes the dialog).
#[component]
fn Refusal(
    value: impl Fn() -> Option<Result<RollbackRequest, crate::error::ApiError>> + Send + Sync + 'static,
) -> impl IntoView {
    move || value().and_then(Result::err).map(|e| view! { <p class="form-note err" role="alert">{e.message}</p> })
}

fn candidate_option(c: &RollbackCandidate, proposed: Option<i64>, chosen: Option<i64>) -> impl IntoView + use<> {
    let mut label = format!("v{}", c.version);
    if Some(c.version) == proposed {
        label.push_str(" — proposed");
    }
    if c.health != Health::Unknown {
        label.push_str(&format!(" · {}", c.health.as_str()));
    }
    if let Some(at) = &c.replaced_at {
        label.push_str(&format!(" · live here until {}", format::time(at)));
    }
    if let Some(blocker) = &c.blocker {
        label = format!("v{} — {blocker}", c.version);
    }
    view! {
        <option value=c.version selected=Some(c.version) == chosen disabled=c.blocker.is_some()>{label}</option>
    }
}

#[component]
fn Checks(checks: Vec<PreflightCheck>) -> impl IntoView {
    view! {
        <ul class="checks" aria-label="Preflight checks">
            {checks.into_iter().map(|c| view! {
                <li class:passed=c.passed class:failed=!c.passed data-check=c.name.clone()>
                    <span class="check-mark" aria-hidden="true">{if c.passed { "✓" } else { "✗" }}</span>
                    {c.message}
                </li>
            }).collect_view()}
        </ul>
    }
}

#[component]
fn Comparison(rows: Vec<MetricComparison>, live: Option<i64>, target: Option<i64>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="muted small">"Neither version has metrics to compare."</p> }.into_any();
    }
    let cell = |v: Option<f64>| v.map_or_else(|| "—".to_string(), format::significant);
    view! {
        <table class="table compact comparison">
            <thead><tr>
                <th scope="col">"Metric"</th>
                <th scope="col">{format!("{} (live)", format::version(live))}</th>
                <th scope="col">{format!("{} (target)", format::version(target))}</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|r| view! {
                    <tr>
                        <td>{r.key.clone()}" "<span class="muted small">{r.source.as_str()}</span>
                            {r.guarded.then(|| view! { " "<span class="badge">"guarded"</span> })}</td>
                        <td class="num">{cell(r.live)}</td>
                        <td class="num">{cell(r.target)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
