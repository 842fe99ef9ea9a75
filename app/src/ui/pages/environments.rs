//! Environments (admins): each environment's rollback policy — approvals, time-to-live,
//! break-glass roles, automatic requests, freeze windows — and the webhooks told of every
//! live-version change, with their delivery logs.

use leptos::prelude::*;
use leptos_meta::Title;

use super::admin::RoleBoxes;
use crate::domain::{DeliveryStatus, Policy, Role, Webhook, WebhookDelivery};
use crate::server_fns::{
    AddFreezeWindow, AddWebhook, EnvironmentsPageData, RemoveFreezeWindow, RemoveWebhook, SavePolicy, SetWebhookActive,
    environments_page, webhook_log,
};
use crate::ui::components::{ActionResult, ErrorPanel, Loading, emptied_on_success};
use crate::ui::format;

/// The page's forms.
#[derive(Clone, Copy)]
struct Forms {
    save: ServerAction<SavePolicy>,
    add_freeze: ServerAction<AddFreezeWindow>,
    remove_freeze: ServerAction<RemoveFreezeWindow>,
    add_webhook: ServerAction<AddWebhook>,
    set_active: ServerAction<SetWebhookActive>,
    remove_webhook: ServerAction<RemoveWebhook>,
    /// The webhook whose deliveries are shown.
    log_of: RwSignal<Option<i64>>,
    /// The environment and form (`policy`, `add-freeze`, `remove-freeze`) last sent: that panel
    /// shows the outcome.
    sent_from: RwSignal<Option<(String, &'static str)>>,
}

impl Forms {
    fn version(&self) -> [usize; 6] {
        [
            self.save.version().get(),
            self.add_freeze.version().get(),
            self.remove_freeze.version().get(),
            self.add_webhook.version().get(),
            self.set_active.version().get(),
            self.remove_webhook.version().get(),
        ]
    }
}

#[component]
pub fn EnvironmentsPage() -> impl IntoView {
    let forms = Forms {
        save: ServerAction::new(),
        add_freeze: ServerAction::new(),
        remove_freeze: ServerAction::new(),
        add_webhook: ServerAction::new(),
        set_active: ServerAction::new(),
        remove_webhook: ServerAction::new(),
        log_of: RwSignal::new(None),
        sent_from: RwSignal::new(None),
    };
    let page = Resource::new(move || forms.version(), |_| environments_page());
    let log = LocalResource::new(move || {
        let id = forms.log_of.get();
        async move {
            match id {
                Some(id) => Some(webhook_log(id).await),
                None => None,
            }
        }
    });
    view! {
        <Title text="Environments"/>
        <div class="page-head">
            <div>
                <h1>"Environments"</h1>
                <p class="muted">"How each environment guards its rollbacks, and who is told when a live version changes."</p>
            </div>
        </div>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(data) => view! { <Environments data forms/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                log.await.map(|page| match page {
                    Ok(page) => view! { <DeliveryLog deliveries=page.items forms/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                })
            })}
        </Transition>
    }
}

#[component]
fn Environments(data: EnvironmentsPageData, forms: Forms) -> impl IntoView {
    let EnvironmentsPageData { policies, may_edit, webhooks } = data;
    let environments: Vec<String> = policies.iter().map(|p| p.environment.clone()).collect();
    view! {
        <div class="policy-grid">
            {policies.into_iter().map(|p| view! { <PolicyPanel policy=p may_edit forms/> }).collect_view()}
        </div>
        {webhooks.map(|hooks| view! { <Webhooks hooks environments forms/> })}
    }
}

#[component]
fn PolicyPanel(policy: Policy, may_edit: bool, forms: Forms) -> impl IntoView {
    let env = policy.environment.clone();
    let windows = policy.freeze_windows.clone();
    let offered = vec![Role::Operator, Role::Reviewer, Role::Compliance, Role::Admin];
    let summary = format!(
        "{} · {} min to approve · break glass: {}",
        match policy.approvals_required {
            0 => "no approval".to_string(),
            1 => "1 approval".to_string(),
            n => format!("{n} approvals"),
        },
        policy.approval_ttl_minutes,
        if policy.break_glass_roles.is_empty() {
            "nobody".to_string()
        } else {
            policy.break_glass_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        }
    );
    // Each outcome shows in the panel, under the form, it was sent from.
    let sent = {
        let env = env.clone();
        move |form: &'static str| {
            let env = env.clone();
            move |_| forms.sent_from.set(Some((env.clone(), form)))
        }
    };
    let outcome = {
        let env = env.clone();
        move |form: &'static str| {
            let env = env.clone();
            move || forms.sent_from.read().as_ref().is_some_and(|(e, f)| *e == env && *f == form)
        }
    };
    let freeze_rows = windows
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let env = env.clone();
            view! {
                <li>
                    <span>{format!("{} → {}", format::time(&w.starts_at), format::time(&w.ends_at))}</span>
                    {(!w.reason.is_empty()).then(|| view! { " "<q class="reason">{w.reason.clone()}</q> })}
                    {may_edit.then(|| view! {
                        <ActionForm action=forms.remove_freeze attr:class="inline" on:submit=sent("remove-freeze")>
                            <input type="hidden" name="environment" value=env/>
                            <input type="hidden" name="index" value=i/>
                            <button type="submit" class="link danger">"Remove"</button>
                        </ActionForm>
                    })}
                </li>
            }
        })
        .collect_view();
    let (save_env, freeze_env) = (env.clone(), env.clone());
    view! {
        <section class="panel policy" data-env=env.clone()>
            <header class="panel-head plain">
                <h2>{env.clone()}</h2>
                <span class="muted small">{if policy.updated_by == "system" {
                    "default policy".to_string()
                } else {
                    format!("changed {} by {}", format::time(&policy.updated_at), policy.updated_by)
                }}</span>
            </header>
            <p class="policy-summary">{summary}{policy.auto_request.then_some(" · files requests when failing")}</p>
            {may_edit.then(|| view! {
                <ActionForm action=forms.save attr:class="policy-form" on:submit=sent("policy")>
                    <input type="hidden" name="environment" value=save_env/>
                    <div class="row">
                        <label>"Approvals required"<input type="number" name="approvals_required" min="0" max="10" required
                            value=policy.approvals_required/></label>
                        <label>"Time to approve (minutes)"<input type="number" name="approval_ttl_minutes" min="1" max="10080" required
                            value=policy.approval_ttl_minutes/></label>
                    </div>
                    <RoleBoxes offered checked=policy.break_glass_roles.clone() field="break_glass_roles" legend="May break glass"/>
                    <label class="check">
                        <input type="checkbox" name="auto_request" checked=policy.auto_request/>
                        "File a rollback request when the live version fails its guardrails"
                    </label>
                    <button type="submit" class="primary">"Save policy"</button>
                </ActionForm>
            })}
            <ActionResult value={
                let here = outcome("policy");
                move || here().then(|| forms.save.value().get()).flatten()
            } success="Policy saved."/>
            <h3>"Freeze windows"</h3>
            <p class="muted small">"While frozen, deploys and rollback requests are refused; only break glass changes the live version. Times are UTC."</p>
            <ul class="freeze-list">{freeze_rows}</ul>
            {may_edit.then(|| view! {
                <ActionForm action=forms.add_freeze node_ref=emptied_on_success(forms.add_freeze) attr:class="freeze-form" on:submit=sent("add-freeze")>
                    <input type="hidden" name="environment" value=freeze_env/>
                    <label>"From"<input type="datetime-local" name="starts_at" required/></label>
                    <label>"Until"<input type="datetime-local" name="ends_at" required/></label>
                    <label>"Reason"<input type="text" name="reason" maxlength="256" placeholder="e.g. holiday freeze"/></label>
                    <button type="submit">"Add window"</button>
                </ActionForm>
            })}
            <ActionResult value={
                let here = outcome("add-freeze");
                move || here().then(|| forms.add_freeze.value().get()).flatten()
            } success="Freeze window added."/>
            <ActionResult value={
                let here = outcome("remove-freeze");
                move || here().then(|| forms.remove_freeze.value().get()).flatten()
            } success="Freeze window removed."/>
        </section>
    }
}

#[component]
fn Webhooks(hooks: Vec<Webhook>, environments: Vec<String>, forms: Forms) -> impl IntoView {
    let rows = hooks
        .into_iter()
        .map(|w| {
            let scope = format!(
                "{} · {}",
                w.model.clone().unwrap_or_else(|| "every model".into()),
                w.environment.clone().unwrap_or_else(|| "every environment".into())
            );
            let failed = w.failed;
            view! {
                <tr data-webhook=w.id>
                    <td><code class="clip">{w.url.clone()}</code><br/><span class="muted small">{w.description.clone()}</span></td>
                    <td>{scope}</td>
                    <td>{if w.active { view! { <span class="badge live">"active"</span> }.into_any() } else { view! { <span class="badge muted">"paused"</span> }.into_any() }}</td>
                    <td class="num">{w.delivered}</td>
                    <td class="num">{w.pending}</td>
                    <td class="num" class:danger-text=move || failed != 0>{failed}</td>
                    <td class="actions">
                        <button type="button" class="link" on:click=move |_| forms.log_of.set(Some(w.id))>"Deliveries"</button>
                        <ActionForm action=forms.set_active attr:class="inline">
                            <input type="hidden" name="id" value=w.id/>
                            <input type="hidden" name="active" value=(!w.active).to_string()/>
                            <button type="submit" class="link">{if w.active { "Pause" } else { "Resume" }}</button>
                        </ActionForm>
                        <ActionForm action=forms.remove_webhook attr:class="inline">
                            <input type="hidden" name="id" value=w.id/>
                            <button type="submit" class="link danger">"Delete"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="panel flush" id="webhooks">
            <header class="panel-head"><h2>"Webhooks"</h2></header>
            <p class="muted small pad">
                "Each live-version change is POSTed as JSON with "<code>"Modelgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>"</code>
                "; failed deliveries are retried with exponential backoff, across restarts."
            </p>
            <table class="table">
                <thead><tr>
                    <th scope="col">"URL"</th><th scope="col">"Changes of"</th><th scope="col">"Status"</th>
                    <th scope="col">"Delivered"</th><th scope="col">"Pending"</th><th scope="col">"Failed"</th><th scope="col"></th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <ActionForm action=forms.add_webhook node_ref=emptied_on_success(forms.add_webhook) attr:class="webhook-form pad">
                <label>"URL"<input type="url" name="url" required placeholder="https://deployer.example/hooks/modelgate"/></label>
                <label>"Model"<input type="text" name="model" placeholder="every model"/></label>
                <label>"Environment"
                    <select name="environment">
                        <option value="">"every environment"</option>
                        {environments.into_iter().map(|e| view! { <option value=e.clone()>{e.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Description"<input type="text" name="description" maxlength="256"/></label>
                <button type="submit" class="primary">"Add webhook"</button>
            </ActionForm>
            <div class="pad">
                {move || forms.add_webhook.value().get().map(|r| match r {
                    Ok(created) => view! {
                        <p class="form-note ok" role="status">
                            "Webhook added. Its signing secret, shown this once: "<code class="secret">{created.secret}</code>
                        </p>
                    }.into_any(),
                    Err(e) => view! { <p class="form-note err" role="alert">{e.message}</p> }.into_any(),
                })}
            </div>
        </section>
    }
}

#[component]
fn DeliveryLog(deliveries: Vec<WebhookDelivery>, forms: Forms) -> impl IntoView {
    view! {
        <section class="panel flush" id="deliveries">
            <header class="panel-head">
                <h2>{move || format!("Deliveries of webhook {}", forms.log_of.get().unwrap_or_default())}</h2>
                <button type="button" class="link" on:click=move |_| forms.log_of.set(None)>"Close"</button>
            </header>
            {if deliveries.is_empty() {
                view! { <p class="muted table-foot">"No deliveries yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table">
                        <thead><tr>
                            <th scope="col">"Event"</th><th scope="col">"Change"</th><th scope="col">"Status"</th><th scope="col">"Attempts"</th>
                        </tr></thead>
                        <tbody>{deliveries.into_iter().map(|d| {
                            let change = &d.payload.deployment;
                            let status = match d.status {
                                DeliveryStatus::Delivered => "badge live",
                                DeliveryStatus::Pending => "badge warn",
                                DeliveryStatus::Failed => "badge danger",
                            };
                            view! {
                                <tr data-delivery=d.id>
                                    <td>{format!("#{}", d.event_id)}<br/><span class="muted small">{format::time(&d.created_at)}</span></td>
                                    <td>{format!("{} · {}: {} → v{} ({})", change.model, change.environment, format::version(change.from_version), change.to_version, change.kind.as_str())}</td>
                                    <td><span class=status>{d.status.as_str()}</span>
                                        {d.next_attempt_at.as_deref().map(|at| view! { <br/><span class="muted small">{format!("next try {}", format::time(at))}</span> })}</td>
                                    <td><ol class="attempts">{d.attempts.into_iter().map(|a| view! {
                                        <li>{format!("{} · {} · {} ms", format::time(&a.at), a.status_code.map_or_else(|| "no answer".to_string(), |c| c.to_string()), a.duration_ms)}
                                            {a.error.map(|e| view! { <br/><span class="muted small">{e}</span> })}</li>
                                    }).collect_view()}</ol></td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
