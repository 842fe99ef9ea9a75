//! The compliance console: the audit log with filters and a cursor, exports, the integrity panel
//! with *verify now*, one entry with its before/after diff, and the trail shown on other pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::domain::{AuditAction, AuditEntry, AuditQuery, IntegrityStatus, JobState, percent_encoded};
use crate::server_fns::{
    AuditEntryPageData, AuditScreenData, VerifyAuditNow, audit_entry_page, audit_screen, integrity_panel,
};
use crate::ui::components::{ActionResult, ErrorPanel, Loading};
use crate::ui::diff::diff;
use crate::ui::format;

/// The filters a URL carries, in the order they appear in links.
const FILTERS: [&str; 9] = ["from", "to", "actor", "action", "model", "version", "environment", "q", "sessions"];

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
    let export_progress = RwSignal::new(None::<String>);
    view! {
        <Title text="Audit log"/>
        <div class="page-head">
            <div>
                <h1>"Audit log"</h1>
                <p class="muted">"Every change, hash-chained and signed. Entries cannot be edited or deleted."</p>
            </div>
            <div class="export-links">
                <ExportProgress progress=export_progress/>
                <a class="button" download="" href=move || format!("/api/v1/audit/export?format=jsonl{}", filter_string()) id="export-jsonl" on:click=export_with_progress(export_progress)>"Export JSONL"</a>
                <a class="button secondary" download="" href=move || format!("/api/v1/audit/export?format=csv{}", filter_string()) id="export-csv" on:click=export_with_progress(export_progress)>"Export CSV"</a>
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
            <div class="filter-actions">
                <button type="submit">"Apply"</button>
                <A href="/audit" attr:class="button secondary">"Clear"</A>
            </div>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(AuditScreenData { page, status, may_manage_users }) => {
                        let older = page.next_before.map(|b| format!("/audit?before={b}{}", filter_string()));
                        let newest = before().map(|_| format!("/audit?{}", filter_string().trim_start_matches('&')));
                        view! {
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

/// How far a running export has got, next to the export buttons.
#[component]
fn ExportProgress(progress: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        progress
            .get()
            .map(|text| view! { <span class="export-progress muted" role="status" id="export-progress">{text}</span> })
    }
}

/// Once hydrated, an export link downloads through the page so it can count what has arrived;
/// before that (or without WASM) the link downloads natively.
fn export_with_progress(progress: RwSignal<Option<String>>) -> impl Fn(leptos::ev::MouseEvent) + Clone {
    move |ev| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let href =
                ev.current_target().and_then(|t| t.dyn_into::<web_sys::HtmlAnchorElement>().ok()).map(|a| a.href());
            if let Some(href) = href {
                ev.prevent_default();
                leptos::task::spawn_local(streamed_download(href, progress));
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, progress);
    }
}

/// Fetches `href`, reporting lines and bytes received as they stream in, then saves the file.
#[cfg(feature = "hydrate")]
async fn streamed_download(href: String, progress: RwSignal<Option<String>>) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let report = |lines: usize, bytes: usize, done: bool| {
        let verb = if done { "Exported" } else { "Exporting…" };
        progress.set(Some(format!("{verb} {lines} lines ({})", format::bytes(bytes))));
    };
    let outcome: Result<(), String> = async {
        let fail = |what: &str| format!("Export failed: {what}");
        let window = web_sys::window().ok_or_else(|| fail("no window"))?;
        let response: web_sys::Response =
            JsFuture::from(window.fetch_with_str(&href)).await.map_err(|_| fail("network error"))?.unchecked_into();
        if !response.ok() {
            return Err(fail(&format!("HTTP {}", response.status())));
        }
        let name = response
            .headers()
            .get("content-disposition")
            .ok()
            .flatten()
            .and_then(|d| d.split("filename=\"").nth(1).map(|n| n.trim_end_matches('"').to_string()))
            .unwrap_or_else(|| "modelgate-audit".into());
        let body = response.body().ok_or_else(|| fail("empty response"))?;
        let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        let parts = js_sys::Array::new();
        let (mut lines, mut bytes) = (0, 0);
        report(0, 0, false);
        loop {
            let chunk = JsFuture::from(reader.read()).await.map_err(|_| fail("interrupted"))?;
            let done = js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true);
            if done {
                break;
            }
            let value: js_sys::Uint8Array =
                js_sys::Reflect::get(&chunk, &"value".into()).map_err(|_| fail("bad chunk"))?.unchecked_into();
            bytes += value.length() as usize;
            lines += value.to_vec().iter().filter(|b| **b == b'\n').count();
            parts.push(&value);
            report(lines, bytes, false);
        }
        let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(|_| fail("cannot assemble"))?;
        let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| fail("cannot save"))?;
        let link: web_sys::HtmlAnchorElement =
            document().create_element("a").map_err(|_| fail("cannot save"))?.unchecked_into();
        link.set_href(&url);
        link.set_download(&name);
        link.click();
        let _ = web_sys::Url::revoke_object_url(&url);
        report(lines, bytes, true);
        Ok(())
    }
    .await;
    if let Err(message) = outcome {
        progress.set(Some(message));
    }
}

fn to_query(filters: &[(&str, Option<String>); 9], before: Option<i64>) -> AuditQuery {
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
    Effect::new(move |_| {
        if running() {
            set_timeout(
                move || {
                    leptos::task::spawn_local(async move {
                        if let Ok(now) = integrity_panel().await {
                            status.try_set(now);
                        }
                    })
                },
                std::time::Duration::from_secs(1),
            );
        }
    });
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
