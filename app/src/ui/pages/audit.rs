//! The compliance console: the audit log with filters and a cursor, exports, the integrity panel
//! with *verify now*, one entry with its before/after diff, and the trail shown on other pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::domain::{AuditAction, AuditEntry, AuditQuery, ExportFile, IntegrityStatus, Job, JobState, percent_encoded};
use crate::server_fns::{
    AuditEntryPageData, AuditScreenData, VerifyAuditNow, audit_entry_page, audit_screen, integrity_panel, latest_export,
};
use crate::ui::components::{ActionResult, ErrorPanel, Loading};
use crate::ui::diff::diff;
use crate::ui::format;

/// The filters a URL carries, in the order they appear in links.
const FILTERS: [&str; 10] =
    ["from", "to", "actor", "action", "model", "version", "environment", "q", "sessions", "verdicts"];

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |key: &str| query.read().get(key).filter(|v| !v.trim().is_empty());
    let filters = move || FILTERS.map(|k| (k, param(k)));
    let before = move || param("before").and_then(|b| b.parse::<i64>().ok());
    let verify = ServerAction::<VerifyAuditNow>::new();
    let data = Resource::new(
        move || (filters(), before(), verify.version().get()),
        |(f, before, _)| audit_screen(to_query(&f, before)),
    );
    // The filters as a query string (without the cursor), for export and paging links.
    let filter_string = move || {
        filters()
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("&{k}={}", percent_encoded(v))))
            .collect::<String>()
    };
    let value = move |key: &'static str| move || param(key).unwrap_or_default();
    let started = RwSignal::new(None::<Result<Job, String>>);
    let query = move || AuditQuery { limit: None, ..to_query(&filters(), None) };
    view! {
        <Title text="Audit log"/>
        <div class="page-head">
            <div>
                <h1>"Audit log"</h1>
                <p class="muted">"Every change, hash-chained and signed. Entries cannot be edited or deleted."</p>
            </div>
            <div class="export-links">
                <a class="button" download="" href=move || format!("/api/v1/audit/export?format=jsonl{}", filter_string()) id="export-jsonl" on:click=start_export("jsonl", query, started)>"Export JSONL"</a>
                <a class="button secondary" download="" href=move || format!("/api/v1/audit/export?format=csv{}", filter_string()) id="export-csv" on:click=start_export("csv", query, started)>"Export CSV"</a>
            </div>
        </div>
        <form class="panel filters" method="get" action="/audit" id="audit-filters">
            <label>"From (UTC)"<input type="datetime-local" name="from" value=value("from")/></label>
            <label>"To (UTC)"<input type="datetime-local" name="to" value=value("to")/></label>
            <label>"Actor"<input type="text" name="actor" placeholder="username" value=value("actor")/></label>
            <label>"Action"
                <select name="action">
                    <option value="">"Any action"</option>
                    {AuditAction::ALL.map(|a| {
                        let selected = move || param("action").as_deref() == Some(a.as_str());
                        view! { <option value=a.as_str() selected=selected>{a.as_str()}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Model"<input type="text" name="model" value=value("model")/></label>
            <label>"Environment"<input type="text" name="environment" value=value("environment")/></label>
            <label class="wide">"Text"<input type="search" name="q" placeholder="target, reason, before/after…" value=value("q")/></label>
            <label class="check"><input type="checkbox" name="sessions" value="false" checked=move || param("sessions").as_deref() == Some("false")/>"Hide sign-ins and sign-outs"</label>
            <label class="check"><input type="checkbox" name="verdicts" value="false" checked=move || param("verdicts").as_deref() == Some("false")/>"Hide guardrails' verdicts"</label>
            <div class="filter-actions">
                <button type="submit">"Apply"</button>
                <A href="/audit" attr:class="button secondary">"Clear"</A>
            </div>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(AuditScreenData { page, status, may_manage_users, export }) => {
                        let older = page.next_before.map(|b| format!("/audit?before={b}{}", filter_string()));
                        let newest = before().map(|_| format!("/audit?{}", filter_string().trim_start_matches('&')));
                        view! {
                            <ExportJob job=export started/>
                            <div class="audit-layout">
                                <section class="panel flush">
                                    <EntriesTable entries=page.entries may_manage_users/>
                                    <nav class="pager">
                                        {newest.map(|href| view! { <A href=href>"← Newest"</A> })}
                                        {older.map(|href| view! { <A href=href attr:id="older">"Older →"</A> })}
                                    </nav>
                                </section>
                                <IntegrityPanel status verify/>
                            </div>
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Once hydrated, an export button starts an export job on the server (downloaded once written,
/// however long that takes and whatever the page does meanwhile); before that, or without WASM,
/// the link streams the export natively.
fn start_export(
    format: &'static str,
    query: impl Fn() -> AuditQuery + Clone + 'static,
    started: RwSignal<Option<Result<Job, String>>>,
) -> impl Fn(leptos::ev::MouseEvent) + Clone {
    move |ev| {
        #[cfg(feature = "hydrate")]
        {
            ev.prevent_default();
            let body = serde_json::json!({ "format": format, "filters": query() }).to_string();
            leptos::task::spawn_local(async move { started.set(Some(post_export(body).await)) });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, format, &query, started);
    }
}

/// `POST /api/v1/audit/exports` with `body`: the job, or why it did not start.
#[cfg(feature = "hydrate")]
async fn post_export(body: String) -> Result<Job, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let fail = |what: &str| format!("The export did not start: {what}");
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    let headers = web_sys::Headers::new().map_err(|_| fail("no headers"))?;
    headers.set("content-type", "application/json").map_err(|_| fail("no headers"))?;
    init.set_headers(&headers);
    let window = web_sys::window().ok_or_else(|| fail("no window"))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init("/api/v1/audit/exports", &init))
        .await
        .map_err(|_| fail("network error"))?
        .unchecked_into();
    let text = JsFuture::from(response.text().map_err(|_| fail("no answer"))?)
        .await
        .map_err(|_| fail("no answer"))?
        .as_string()
        .unwrap_or_default();
    if response.status() == 202 {
        serde_json::from_str(&text).map_err(|_| fail("an answer it cannot read"))
    } else {
        Err(serde_json::from_str::<crate::error::ErrorBody>(&text)
            .map(|e| fail(&e.error.message))
            .unwrap_or_else(|_| fail(&format!("HTTP {}", response.status()))))
    }
}

/// While `running` holds, reads `fetch` into `into` again every second (a job's progress).
fn follow<T, Fut>(into: RwSignal<T>, running: impl Fn() -> bool + Send + Sync + 'static, fetch: fn() -> Fut)
where
    T: Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, crate::error::ApiError>> + 'static,
{
    Effect::new(move |_| {
        if running() {
            set_timeout(
                move || {
                    leptos::task::spawn_local(async move {
                        if let Ok(now) = fetch().await {
                            into.try_set(now);
                        }
                    })
                },
                std::time::Duration::from_secs(1),
            );
        }
    });
}

/// The caller's newest export: its progress while it is written (read again every second; the job
/// lives in the database, so a reload picks it up), then a link to download it.
#[component]
fn ExportJob(job: Option<Job>, started: RwSignal<Option<Result<Job, String>>>) -> impl IntoView {
    let job = RwSignal::new(job);
    Effect::new(move |_| {
        if let Some(Ok(newer)) = started.get() {
            job.update(|j| {
                if j.as_ref().is_none_or(|j| j.id <= newer.id) {
                    *j = Some(newer);
                }
            });
        }
    });
    follow(job, move || job.read().as_ref().is_some_and(|j| j.state == JobState::Running), latest_export);
    move || {
        if let Some(Err(message)) = started.get() {
            return view! { <p class="form-note err export-job" id="export-job" role="alert">{message}</p> }.into_any();
        }
        let Some(j) = job.get() else { return ().into_any() };
        match j.state {
            JobState::Running => view! {
                <div class="job-progress export-job" id="export-job" role="status">
                    <progress max=j.total.max(1) value=j.done aria-label="Export progress"></progress>
                    <span>{format!("Exporting: entry {} of {} ({} %).", j.done, j.total, j.percent())}</span>
                </div>
            }
            .into_any(),
            JobState::Done => {
                let file: Option<ExportFile> = j.result.clone().and_then(|r| serde_json::from_value(r).ok());
                let Some(file) = file else { return ().into_any() };
                view! {
                    <p class="export-job" id="export-job" role="status">
                        "Your export is ready: "
                        <a href=format!("/api/v1/audit/jobs/{}/file", j.id) download=file.name.clone()>{file.name.clone()}</a>
                        {format!(" ({}, {} entries, written {}).", format::bytes(file.size.max(0) as usize), file.entries,
                            format::time(j.finished_at.as_deref().unwrap_or_default()))}
                    </p>
                }
                .into_any()
            }
            JobState::Failed => view! {
                <p class="form-note err export-job" id="export-job" role="alert">
                    {format!("The export started at {} did not finish: {}.", format::time(&j.started_at), j.error.unwrap_or_default())}
                </p>
            }
            .into_any(),
        }
    }
}

fn to_query(filters: &[(&str, Option<String>); 10], before: Option<i64>) -> AuditQuery {
    let get = |key: &str| filters.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.clone());
    AuditQuery {
        from: get("from"),
        to: get("to"),
        actor: get("actor"),
        action: get("action"),
        model: get("model"),
        version: get("version").and_then(|v| v.parse().ok()),
        environment: get("environment"),
        q: get("q"),
        sessions: get("sessions").map(|v| v != "false"),
        verdicts: get("verdicts").map(|v| v != "false"),
        before,
        limit: Some(50),
    }
}

/// Where an entry's target lives in the console, if anywhere the reader may go (the users page is
/// for admins only).
fn target_href(e: &AuditEntry, may_manage_users: bool) -> Option<String> {
    match (&e.model, e.version) {
        (Some(m), Some(n)) => Some(format!("/models/{}/versions/{n}", percent_encoded(m))),
        (Some(m), None) => Some(format!("/models/{}", percent_encoded(m))),
        _ if e.target.starts_with("users/") => may_manage_users.then(|| "/admin/users".into()),
        _ if e.target.starts_with("tokens/") => Some("/tokens".into()),
        _ => None,
    }
}

/// A short name for an entry's target: `fraud v3`, `fraud @ production`, or its path.
fn target_label(e: &AuditEntry) -> String {
    match (&e.model, e.version, &e.environment) {
        (Some(m), Some(n), _) => format!("{m} v{n}"),
        (Some(m), None, Some(env)) => format!("{m} @ {env}"),
        (Some(m), None, None) => m.clone(),
        _ => e.target.clone(),
    }
}

#[component]
fn EntriesTable(entries: Vec<AuditEntry>, may_manage_users: bool) -> impl IntoView {
    if entries.is_empty() {
        return view! { <p class="empty">"No entries match these filters."</p> }.into_any();
    }
    view! {
        <table class="table dense" id="audit-entries">
            <thead>
                <tr>
                    <th scope="col">"#"</th>
                    <th scope="col">"Time"</th>
                    <th scope="col">"Actor"</th>
                    <th scope="col">"Action"</th>
                    <th scope="col">"Target"</th>
                    <th scope="col">"Reason"</th>
                </tr>
            </thead>
            <tbody>
                {entries.into_iter().map(|e| {
                    let href = format!("/audit/{}", e.seq);
                    let label = target_label(&e);
                    let target = match target_href(&e, may_manage_users) {
                        Some(t) => view! { <A href=t>{label}</A> }.into_any(),
                        None => view! { <span>{label}</span> }.into_any(),
                    };
                    view! {
                        <tr>
                            <td><A href=href attr:class="seq">{e.seq}</A></td>
                            <td class="nowrap">{format::time(&e.at)}</td>
                            <td class="nowrap">{e.actor.clone()}</td>
                            <td><span class=action_class(&e.action)>{e.action.clone()}</span></td>
                            <td class="nowrap">{target}</td>
                            <td class="muted reason-cell">{e.reason.clone().unwrap_or_default()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Failed sign-ins and quarantines stand out; everything else is a plain badge.
fn action_class(action: &str) -> &'static str {
    match action {
        "session.sign_in_failed" | "version.quarantine" | "token.revoke" => "badge warn",
        _ => "badge",
    }
}

/// The integrity panel. While a verification runs (its job lives in the database, so a reload or
/// another tab picks it up), its progress is read again every second until it ends.
#[component]
fn IntegrityPanel(status: IntegrityStatus, verify: ServerAction<VerifyAuditNow>) -> impl IntoView {
    let status = RwSignal::new(status);
    let running = move || status.read().verifying.as_ref().is_some_and(|job| job.state == JobState::Running);
    follow(status, running, integrity_panel);
    view! {
        <aside class="panel integrity" id="integrity">
            <h2>"Integrity"</h2>
            {move || integrity_facts(status.get())}
            <ActionForm action=verify attr:class="stack-form" attr:id="verify-now">
                <button type="submit" disabled=running
                    title=move || running().then_some("A verification is running: its progress is above.")>"Verify now"</button>
            </ActionForm>
            <ActionResult value=move || verify.value().get() success="Verifying in the background: you may leave this page."/>
            <p class="muted small">
                "Auditors verify exports offline with "<code>"modelgate audit verify FILE --public-key KEY"</code>
                " and the key at "<a href="/api/v1/audit/public-key" rel="external">"/api/v1/audit/public-key"</a>"."
            </p>
        </aside>
    }
}

/// The head, the last verification (or the one running), the last checkpoint and the one kept
/// outside the database.
fn integrity_facts(status: IntegrityStatus) -> impl IntoView {
    let verification = match status.last_verification.clone() {
        None => view! { <p class="muted" id="verification">"Not verified yet."</p> }.into_any(),
        Some(v) => match v.problem {
            None => view! {
                <p id="verification"><span class="badge live">"intact"</span>
                    {format!(" Verified up to entry {} at {}: {} entries and {} signed checkpoint{} in {} ms.",
                        v.verified_to, format::time(&v.at), v.entries, v.checkpoints,
                        if v.checkpoints == 1 { "" } else { "s" }, v.duration_ms)}
                </p>
            }
            .into_any(),
            Some(p) => view! {
                <p id="verification" role="alert"><span class="badge danger">"broken"</span>
                    {format!(" Verified up to entry {}; entry {}: {}", v.verified_to, p.seq, p.what)}
                </p>
            }
            .into_any(),
        },
    };
    let job = status.verifying.clone().map(|job| match job.state {
        JobState::Running => view! {
            <div class="job-progress" id="verify-progress" role="status">
                <progress max=job.total.max(1) value=job.done aria-label="Verification progress"></progress>
                <span>{format!("Verifying: {} of {} entries ({} %), started by {} at {}.",
                    job.done, job.total, job.percent(), job.requested_by, format::time(&job.started_at))}</span>
            </div>
        }
        .into_any(),
        _ => view! {
            <p class="form-note err" id="verify-progress" role="alert">
                {format!("The verification started at {} did not finish: {}.",
                    format::time(&job.started_at), job.error.unwrap_or_default())}
            </p>
        }
        .into_any(),
    });
    let checkpoint = match status.last_checkpoint.clone() {
        None => view! { <p class="muted">"No checkpoint signed yet."</p> }.into_any(),
        Some(c) => {
            let (class, text) = if status.checkpoint_signature_valid {
                ("badge live", "signature valid")
            } else {
                ("badge danger", "signature INVALID")
            };
            view! {
                <p id="checkpoint">{format!("Entry {} signed at {} with key ", c.seq, format::time(&c.signed_at))}
                    <code>{c.key_id.clone()}</code>" "<span class=class>{text}</span>
                </p>
            }
            .into_any()
        }
    };
    let witness = match status.witness.clone() {
        None => view! { <p class="muted" id="witness">"None kept yet."</p> }.into_any(),
        Some(w) => view! {
            <p id="witness">{format!("Entry {}, signed at {}: the chain may never be shorter than this, nor differ from it.",
                w.seq, format::time(&w.signed_at))}</p>
        }
        .into_any(),
    };
    view! {
        <dl class="facts">
            <dt>"Head"</dt><dd>{format!("entry {}", status.head_seq)}</dd>
            <dt>"Head hash"</dt><dd><code class="wrap">{status.head_hash.clone()}</code></dd>
        </dl>
        <h3>"Last verification"</h3>
        {verification}
        {job}
        <h3>"Last signed checkpoint"</h3>
        {checkpoint}
        <h3>"Kept outside the database"</h3>
        {witness}
    }
}

#[component]
pub fn AuditEntryPage() -> impl IntoView {
    let params = use_params_map();
    let seq = move || params.read().get("seq").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let entry = Resource::new(seq, audit_entry_page);
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match entry.await {
                    Ok(data) => view! { <EntryDetail data/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn EntryDetail(data: AuditEntryPageData) -> impl IntoView {
    let AuditEntryPageData { entry: e, head_seq, may_manage_users } = data;
    let rows = diff(e.before.as_ref(), e.after.as_ref());
    let target = match target_href(&e, may_manage_users) {
        Some(t) => view! { <A href=t>{e.target.clone()}</A> }.into_any(),
        None => view! { <span>{e.target.clone()}</span> }.into_any(),
    };
    let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    view! {
        <Title text=format!("Audit entry {}", e.seq)/>
        <nav class="crumbs">
            <A href="/audit">"Audit log"</A>" / "<span>{format!("entry {}", e.seq)}</span>
        </nav>
        <div class="page-head">
            <div>
                <h1>{format!("#{} {}", e.seq, e.action)}</h1>
                <p class="muted">{format!("{} by {}", format::time(&e.at), e.actor)}</p>
            </div>
            <nav class="pager">
                {(e.seq > 1).then(|| view! { <A href=format!("/audit/{}", e.seq - 1)>{format!("← #{}", e.seq - 1)}</A> })}
                {(e.seq < head_seq).then(|| view! { <A href=format!("/audit/{}", e.seq + 1)>{format!("#{} →", e.seq + 1)}</A> })}
            </nav>
        </div>
        <div class="columns">
            <section class="panel">
                <h2>"Entry"</h2>
                <dl class="facts" id="entry-facts">
                    <dt>"Time"</dt><dd>{e.at.clone()}</dd>
                    <dt>"Actor"</dt><dd>{e.actor.clone()}</dd>
                    <dt>"Action"</dt><dd><span class=action_class(&e.action)>{e.action.clone()}</span></dd>
                    <dt>"Target"</dt><dd>{target}</dd>
                    <dt>"Reason"</dt><dd>{optional(&e.reason)}</dd>
                    <dt>"Request id"</dt><dd><code>{optional(&e.request_id)}</code></dd>
                    <dt>"Client address"</dt><dd>{optional(&e.client_addr)}</dd>
                </dl>
            </section>
            <section class="panel">
                <h2>"Chain"</h2>
                <dl class="facts">
                    <dt>"Previous hash"</dt><dd><code class="wrap">{e.prev_hash.clone()}</code></dd>
                    <dt>"Hash"</dt><dd><code class="wrap">{e.hash.clone()}</code></dd>
                </dl>
                <p class="muted small">"SHA-256 over the RFC 8785 canonical JSON of every other field of this entry."</p>
            </section>
        </div>
        <section class="panel flush">
            <h2 class="inset">"Before and after"</h2>
            {if rows.is_empty() {
                view! { <p class="empty">"This change records no state."</p> }.into_any()
            } else {
                view! {
                    <table class="table diff" id="diff">
                        <thead><tr><th scope="col">"Field"</th><th scope="col">"Before"</th><th scope="col">"After"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr class=r.change.class()>
                                    <th scope="row"><code>{r.path}</code></th>
                                    <td class="before">{r.before.unwrap_or_default()}</td>
                                    <td class="after">{r.after.unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// The latest audit entries about a model or version, with a link to all of them.
#[component]
pub fn AuditTrail(entries: Vec<AuditEntry>, all_href: String) -> impl IntoView {
    view! {
        <section class="panel" id="audit-trail">
            <h2>"Audit trail"</h2>
            {if entries.is_empty() {
                view! { <p class="muted">"No entries."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline">
                        {entries.into_iter().map(|e| view! {
                            <li>
                                <A href=format!("/audit/{}", e.seq) attr:class="seq">{format!("#{}", e.seq)}</A>
                                <span class=action_class(&e.action)>{e.action.clone()}</span>
                                <span class="muted">{format!(" by {} · {}", e.actor, format::time(&e.at))}</span>
                                {e.reason.clone().map(|r| view! { <q class="reason">{r}</q> })}
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            <A href=all_href>"All entries →"</A>
        </section>
    }
}
