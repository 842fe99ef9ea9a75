//! The rollback dialog: the target (proposed from the environment's history), the preflight
//! checks, the live and target versions' metrics side by side, the policy and a reason — and,
//! for those allowed, break glass with a justification and the model's name typed out.

use leptos::prelude::*;

use crate::domain::{Health, MetricComparison, PreflightCheck, RollbackCandidate, RollbackPlan, RollbackRequest};
use crate::server_fns::{BreakGlassRollback, RequestRollback, RollbackDialogData, rollback_dialog};
use crate::ui::components::{BrokenRules, ErrorPanel, HealthBadge, Loading};
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
    // The reason typed so far: kept while the target changes, which draws the body again.
    let reason = RwSignal::new(String::new());
    let opener = Opener::default();
    // Opening the dialog forgets the last outcome and reason and notes where focus was; closing it
    // gives focus back there. A request that went through closes it.
    Effect::new(move |was_open: Option<bool>| {
        let open = target.with(Option::is_some);
        if open && was_open != Some(true) {
            actions.request.clear();
            actions.break_glass.clear();
            reason.set(String::new());
            opener.remember();
        } else if !open && was_open == Some(true) && !succeeded(actions) {
            // Closed without a request: back to the trigger (a request's note takes focus instead).
            opener.give_focus_back();
        }
        open
    });
    // Escape closes it wherever focus is.
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" && target.with_untracked(Option::is_some) {
            target.set(None);
        }
    });
    on_cleanup(move || escape.remove());
    Effect::new(move |_| {
        if matches!(actions.request.value().get(), Some(Ok(_)))
            || matches!(actions.break_glass.value().get(), Some(Ok(_)))
        {
            target.set(None);
        }
    });
    let close = move || target.set(None);
    // The dialog is drawn once per opening: picking another target redraws only its body.
    let open_in = Memo::new(move |_| target.with(|t| t.as_ref().map(|(environment, _)| environment.clone())));
    move || {
        let environment = open_in.get()?;
        let model = model.clone();
        // Focus moves into the dialog as it opens; its body then moves it to the target picker.
        let modal = NodeRef::<leptos::html::Section>::new();
        Effect::new(move |_| {
            if let Some(modal) = modal.get() {
                let _ = modal.focus();
            }
        });
        Some(view! {
            <div class="modal-backdrop" on:keydown=keep_focus_inside>
                <section class="modal panel" role="dialog" aria-modal="true" aria-labelledby="rollback-title"
                    tabindex="-1" node_ref=modal>
                    <header class="modal-head">
                        <h2 id="rollback-title">{format!("Roll back {model} in {environment}")}</h2>
                        <button type="button" class="link" aria-label="Close" on:click=move |_| close()>"✕"</button>
                    </header>
                    <Transition fallback=Loading>
                        {move || {
                            let (model, environment) = (model.clone(), environment.clone());
                            Suspend::new(async move {
                                match plan.await {
                                    Some(Ok(data)) => view! { <DialogBody model environment data target actions reason/> }.into_any(),
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
    reason: RwSignal<String>,
) -> impl IntoView {
    let RollbackDialogData { plan, broken, may_request, may_break_glass } = data;
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
    // The picker has focus whenever the body is drawn: on opening, and again after a new target
    // (whose checks drew the body anew).
    let picker = NodeRef::<leptos::html::Select>::new();
    Effect::new(move |_| {
        if let Some(picker) = picker.get() {
            // After the frame that puts the new body on the page.
            request_animation_frame(move || {
                let _ = picker.focus();
            });
        }
    });
    view! {
        <div class="rollback-versions">
            <div>
                <span class="muted small">"Live now"</span>
                <p class="big">{format::version(live_version)}" "<HealthBadge health=live_health/></p>
            </div>
            <span class="arrow" aria-hidden="true">"→"</span>
            <label>
                "Roll back to"
                <select name="to_version" form="rollback-request" on:change=on_pick node_ref=picker>
                    {candidates.iter().map(|c| candidate_option(c, proposed, chosen)).collect_view()}
                </select>
            </label>
        </div>
        {(!broken.is_empty()).then(|| view! {
            <div class="dialog-evidence">
                <span class="muted small">"Why: the live version fails"</span>
                <BrokenRules broken/>
            </div>
        })}
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
                <label>"Reason"<textarea name="reason" required maxlength="1000" rows="2"
                    placeholder="What is wrong with the live version?"
                    prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev))></textarea></label>
                <div class="form-actions">
                    <button type="submit" class="primary" disabled=!ready
                        aria-describedby=(!ready).then_some("rollback-blocked")>
                        {if needs == 0 { "Roll back now" } else { "Request rollback" }}
                    </button>
                    <button type="button" on:click=move |_| target.set(None)>"Cancel"</button>
                </div>
                {(!ready).then(|| view! {
                    <p class="form-note err small" id="rollback-blocked">
                        "This target cannot be requested: see the failed check above, or pick another version."
                    </p>
                })}
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

/// Where focus was when the dialog opened (its trigger), to give it back when it closes.
#[derive(Clone, Copy, Default)]
struct Opener {
    #[cfg(feature = "hydrate")]
    element: StoredValue<Option<web_sys::HtmlElement>, LocalStorage>,
}

impl Opener {
    fn remember(self) {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let active = document().active_element().and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
            self.element.set_value(active);
        }
    }

    /// Focuses the trigger again if it is still on the page (a card drawn anew has a new one).
    fn give_focus_back(self) {
        #[cfg(feature = "hydrate")]
        if let Some(trigger) = self.element.get_value().filter(|e| e.is_connected()) {
            let _ = trigger.focus();
        }
    }
}

/// Whether the dialog's last request or break glass went through.
fn succeeded(actions: RollbackActions) -> bool {
    actions.request.value().with_untracked(|v| matches!(v, Some(Ok(_))))
        || actions.break_glass.value().with_untracked(|v| matches!(v, Some(Ok(_))))
}

/// What Tab can reach in a dialog.
#[cfg(feature = "hydrate")]
const FOCUSABLE: &str =
    "a[href], button:not([disabled]), select:not([disabled]), textarea, input:not([type=hidden]), summary";

/// Keeps Tab and Shift+Tab inside the open dialog: past its last control to its first, and back.
fn keep_focus_inside(ev: leptos::ev::KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if ev.key() != "Tab" {
            return;
        }
        let Some(modal) = document().query_selector(".modal").ok().flatten() else { return };
        let Ok(nodes) = modal.query_selector_all(FOCUSABLE) else { return };
        // Controls inside a closed <details> (but its summary) are not shown, so not reachable.
        let shown: Vec<web_sys::HtmlElement> = (0..nodes.length())
            .filter_map(|i| nodes.item(i)?.dyn_into::<web_sys::HtmlElement>().ok())
            .filter(|e| e.closest("details:not([open]) > :not(summary)").ok().flatten().is_none())
            .collect();
        let (Some(first), Some(last)) = (shown.first(), shown.last()) else { return };
        let active = document().active_element();
        let on = |e: &web_sys::HtmlElement| active.as_ref() == Some(e.unchecked_ref::<web_sys::Element>());
        let outside = !active.as_ref().is_some_and(|a| modal.contains(Some(a)));
        if ev.shift_key() && (on(first) || outside || active.as_ref() == Some(&modal)) {
            ev.prevent_default();
            let _ = last.focus();
        } else if !ev.shift_key() && (on(last) || outside) {
            ev.prevent_default();
            let _ = first.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
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
pub(super) fn Comparison(rows: Vec<MetricComparison>, live: Option<i64>, target: Option<i64>) -> impl IntoView {
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
