//! The version page: immutable facts and lineage, editable description and tags, quarantine.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::AuditTrail;
use super::metrics::{VersionMetrics, version_metrics_resource};
use super::model::Tags;
use crate::domain::{Version, VersionFile, percent_encoded};
use crate::server_fns::{EditVersion, QuarantineVersion, ReleaseVersion, version_page};
use crate::ui::components::{ActionResult, ErrorPanel, Loading};
use crate::ui::format;

#[component]
pub fn VersionPage() -> impl IntoView {
    let params = use_params_map();
    let model = move || params.read().get("name").unwrap_or_default();
    let number = move || params.read().get("number").and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
    let edit = ServerAction::<EditVersion>::new();
    let quarantine = ServerAction::<QuarantineVersion>::new();
    let release = ServerAction::<ReleaseVersion>::new();
    let changes = move || (edit.version().get(), quarantine.version().get(), release.version().get());
    let version = Resource::new(move || (model(), number(), changes()), |(m, n, _)| version_page(m, n));
    let (reloads, set_reloads) = signal(0u64);
    let metrics = version_metrics_resource(model, number, reloads);
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match version.await {
                    Ok(page) => {
                        let all_href = format!("/audit?model={}&version={}", percent_encoded(&page.version.model), page.version.number);
                        let (model, number) = (page.version.model.clone(), page.version.number);
                        view! {
                            <VersionDetail version=page.version files=page.files edit quarantine release may_edit=page.may_edit may_quarantine=page.may_quarantine/>
                            <VersionMetrics model number data=metrics set_reloads/>
                            {page.audit_trail.map(|entries| view! { <AuditTrail entries all_href/> })}
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn VersionDetail(
    version: Version,
    files: Vec<VersionFile>,
    edit: ServerAction<EditVersion>,
    quarantine: ServerAction<QuarantineVersion>,
    release: ServerAction<ReleaseVersion>,
    may_edit: bool,
    may_quarantine: bool,
) -> impl IntoView {
    let v = version;
    let model_href = format!("/models/{}", percent_encoded(&v.model));
    let model_name = v.model.clone();
    let hidden_key = {
        let (model, number) = (v.model.clone(), v.number);
        move || {
            view! {
                <input type="hidden" name="model" value=model.clone()/>
                <input type="hidden" name="number" value=number/>
            }
        }
    };
    let (edit_key, quarantine_key, release_key) = (hidden_key.clone(), hidden_key.clone(), hidden_key);
    let lineage = v.lineage.clone();
    let parent = lineage.parent_version.map(|p| {
        let href = format!("/models/{}/versions/{p}", percent_encoded(&v.model));
        view! { <A href=href>{format!("v{p}")}</A> }
    });
    view! {
        <Title text=format!("{} v{}", v.model, v.number)/>
        <nav class="crumbs">
            <A href="/">"Models"</A>" / "<A href=model_href>{model_name}</A>" / "<span>{format!("v{}", v.number)}</span>
        </nav>
        <div class="page-head">
            <div>
                <h1>{format!("{} v{}", v.model, v.number)}</h1>
                <p class="muted">{format!("registered {} by {}", format::time(&v.created_at), v.created_by)}</p>
            </div>
            <div class="status-row">
                {v.live_in.iter().map(|e| view! { <span class="badge live">{format!("live: {e}")}</span> }).collect_view()}
                {v.quarantine.is_some().then(|| view! { <span class="badge danger">"quarantined"</span> })}
            </div>
        </div>
        {v.quarantine.clone().map(|q| view! {
            <section class="banner danger" role="status">
                <strong>"Quarantined: "</strong>{q.reason}
                <span class="muted">{format!(" — {} by {}", format::time(&q.at), q.by)}</span>
            </section>
        })}
        <div class="columns">
            <section class="panel">
                <h2>"Artifact"</h2>
                <dl class="facts">
                    <dt>"URI"</dt><dd><code class="wrap">{v.artifact_uri.clone()}</code></dd>
                    <dt>"Digest"</dt>
                    <dd>{match v.artifact_digest.clone() {
                        Some(d) => view! {
                            <code class="wrap">{d}</code>
                            <span class="muted digest-source">{if v.artifact_root.is_some() {
                                format!("computed by the server over {} file(s)", files.len())
                            } else {
                                "supplied at registration".to_string()
                            }}</span>
                        }.into_any(),
                        None => view! { <span class="badge warn">"missing — cannot be deployed"</span> }.into_any(),
                    }}</dd>
                    <dt>"Framework"</dt><dd>{v.framework.clone()}</dd>
                </dl>
                {(!files.is_empty()).then(|| view! { <VersionFileList model=v.model.clone() number=v.number files/> })}
                <h2>"Lineage"</h2>
                <dl class="facts" id="lineage">
                    <dt>"Training run"</dt>
                    <dd>{match (lineage.run_id.clone(), lineage.run_link.clone()) {
                        (Some(id), Some(link)) => view! { <a href=link rel="noopener noreferrer">{id}</a> }.into_any(),
                        (None, Some(link)) => view! { <a href=link.clone() rel="noopener noreferrer">{link.clone()}</a> }.into_any(),
                        (Some(id), None) => view! { <span>{id}</span> }.into_any(),
                        (None, None) => view! { <span class="muted">"—"</span> }.into_any(),
                    }}</dd>
                    <dt>"Git commit"</dt><dd><code>{lineage.git_commit.clone().unwrap_or_else(|| "—".into())}</code></dd>
                    <dt>"Dataset"</dt><dd>{lineage.dataset_ref.clone().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"Dataset hash"</dt><dd><code class="wrap">{lineage.dataset_hash.clone().unwrap_or_else(|| "—".into())}</code></dd>
                    <dt>"Parent version"</dt><dd>{match parent {
                        Some(link) => link.into_any(),
                        None => view! { <span class="muted">"—"</span> }.into_any(),
                    }}</dd>
                </dl>
            </section>
            <section class="panel">
                <h2>"Training parameters"</h2>
                {if v.parameters.is_empty() {
                    view! { <p class="muted">"None recorded."</p> }.into_any()
                } else {
                    view! {
                        <table class="table compact" id="parameters">
                            <tbody>
                                {v.parameters.iter().map(|(k, val)| view! {
                                    <tr><th scope="row">{k.clone()}</th><td><code>{val.clone()}</code></td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            </section>
        </div>
        <div class="columns">
            {if may_edit { view! {
            <section class="panel">
                <h2>"Description and tags"</h2>
                <ActionForm action=edit attr:class="stack-form" attr:id="edit-version">
                    {edit_key.clone()}
                    <label>"Description"<textarea name="description" rows="3" maxlength="4000">{v.description.clone()}</textarea></label>
                    <label>"Tags (comma-separated)"<input type="text" name="tags" value=v.tags.join(", ")/></label>
                    <div class="tags"><Tags tags=v.tags.clone()/></div>
                    <button type="submit">"Save"</button>
                </ActionForm>
                <ActionResult value=move || edit.value().get() success="Saved."/>
            </section>
            }.into_any() } else { view! {
            <section class="panel">
                <h2>"Description and tags"</h2>
                <p id="description">{v.description.clone()}</p>
                <div class="tags"><Tags tags=v.tags.clone()/></div>
            </section>
            }.into_any() }}
            {may_quarantine.then(|| view! {
            <section class="panel">
                <h2>"Quarantine"</h2>
                {if v.quarantine.is_some() {
                    view! {
                        <p class="muted">"This version is blocked from every deployment until released."</p>
                        <ActionForm action=release attr:class="stack-form">
                            {release_key.clone()}
                            <button type="submit">"Release from quarantine"</button>
                        </ActionForm>
                    }.into_any()
                } else {
                    view! {
                        <p class="muted">"A quarantined version cannot be deployed or chosen as a rollback target."</p>
                        <ActionForm action=quarantine attr:class="stack-form">
                            {quarantine_key.clone()}
                            <label>"Reason"<input type="text" name="reason" required maxlength="1000" placeholder="e.g. label leakage found in training data"/></label>
                            <button type="submit" class="danger">"Quarantine"</button>
                        </ActionForm>
                    }.into_any()
                }}
                <ActionResult value=move || quarantine.value().get() success="Quarantined."/>
                <ActionResult value=move || release.value().get() success="Released."/>
            </section>
            })}
        </div>
    }
}

/// The files the registry holds for a version: path (a download link), size and sha256.
#[component]
fn VersionFileList(model: String, number: i64, files: Vec<VersionFile>) -> impl IntoView {
    let base = format!("/api/v1/models/{}/versions/{number}/files", percent_encoded(&model));
    view! {
        <h2>"Files"</h2>
        <div class="table-scroll">
            <table class="table compact" id="files">
                <thead><tr><th scope="col">"Path"</th><th scope="col" class="num">"Size"</th><th scope="col">"sha256"</th></tr></thead>
                <tbody>
                    {files.into_iter().map(|f| {
                        let href = format!("{base}/{}", f.path.split('/').map(percent_encoded).collect::<Vec<_>>().join("/"));
                        view! {
                            <tr>
                                <td><a href=href download>{f.path.clone()}</a></td>
                                <td class="num">{format::bytes(f.size.max(0) as usize)}</td>
                                <td><code title=f.sha256.clone()>{format::short_digest(&f.sha256)}</code></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
