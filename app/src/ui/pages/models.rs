//! The models list: search, filter by health, sort, each model's live version per environment and
//! its key metric across versions.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::domain::{Health, Model, ModelQuery, ModelSort, Order, percent_encoded};
use crate::server_fns::list_models;
use crate::ui::chart::Sparkline;
use crate::ui::components::{ErrorPanel, HealthBadge, Loading};
use crate::ui::format;

fn parse_sort(s: &str) -> Option<ModelSort> {
    match s {
        "name" => Some(ModelSort::Name),
        "updated_at" => Some(ModelSort::UpdatedAt),
        "created_at" => Some(ModelSort::CreatedAt),
        "versions" => Some(ModelSort::Versions),
        _ => None,
    }
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.read().get("q").unwrap_or_default();
    let sort = move || query.read().get("sort").unwrap_or_else(|| "name".into());
    let desc = move || query.read().get("order").as_deref() == Some("desc");
    let health = move || query.read().get("health").and_then(|h| Health::parse(&h));
    let models = Resource::new(
        move || (search(), sort(), desc(), health()),
        |(q, sort, desc, health)| {
            list_models(ModelQuery {
                q: (!q.is_empty()).then_some(q),
                health,
                sort: parse_sort(&sort),
                order: Some(if desc { Order::Desc } else { Order::Asc }),
                limit: Some(200),
                ..Default::default()
            })
        },
    );
    let header = move |key: &'static str, label: &'static str| {
        let href = move || {
            let next_desc = sort() == key && !desc();
            let q = search();
            let mut href = format!("/?sort={key}&order={}", if next_desc { "desc" } else { "asc" });
            if !q.is_empty() {
                href.push_str("&q=");
                href.push_str(&percent_encoded(&q));
            }
            if let Some(h) = health() {
                href.push_str("&health=");
                href.push_str(h.as_str());
            }
            href
        };
        let arrow = move || match (sort() == key, desc()) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        view! { <th scope="col"><A href=href attr:class="sort">{label}{arrow}</A></th> }
    };
    view! {
        <Title text="Models"/>
        <div class="page-head">
            <h1>"Models"</h1>
            <form class="search" method="get" action="/" role="search">
                <input type="search" name="q" placeholder="Search name, team, tag…" aria-label="Search models" value=search/>
                <select name="health" aria-label="Health">
                    <option value="" selected=move || health().is_none()>"Any health"</option>
                    {[Health::Failing, Health::Warning, Health::Healthy, Health::Unknown].map(|h| view! {
                        <option value=h.as_str() selected=move || health() == Some(h)>{h.as_str()}</option>
                    })}
                </select>
                <input type="hidden" name="sort" value=sort/>
                <button type="submit">"Search"</button>
            </form>
        </div>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match models.await {
                    Ok(page) if page.items.is_empty() => view! {
                        <section class="panel empty">"No models match."</section>
                    }.into_any(),
                    Ok(page) => view! {
                        <section class="panel flush">
                            <table class="table" id="models">
                                <thead>
                                    <tr>
                                        {header("name", "Model")}
                                        <th scope="col">"Owner"</th>
                                        {header("versions", "Versions")}
                                        <th scope="col">"Live"</th>
                                        <th scope="col">"Key metric by version"</th>
                                        {header("updated_at", "Last change")}
                                    </tr>
                                </thead>
                                <tbody>
                                    {page.items.into_iter().map(|m| view! { <ModelRow model=m/> }).collect_view()}
                                </tbody>
                            </table>
                            <p class="table-foot">{format!("{} model(s)", page.total)}</p>
                        </section>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ModelRow(model: Model) -> impl IntoView {
    let href = format!("/models/{}", percent_encoded(&model.name));
    let name = model.name.clone();
    view! {
        <tr data-model=model.name>
            <td>
                <A href=href attr:class="strong">{name}</A>
                <div class="muted small">{model.description.clone()}</div>
            </td>
            <td>{model.owner_team.clone()}</td>
            <td class="num">{model.version_count}</td>
            <td>
                <div class="live-list">
                    {model.live.iter().map(|l| {
                        let health = model.health.iter().find(|h| h.environment == l.environment).map(|h| h.health);
                        view! {
                            <span class="env-chip" data-env=l.environment.clone()>
                                <span class="env-name">{l.environment.clone()}</span>
                                <span class="env-version">{format::version(l.version)}</span>
                                {health.map(|h| view! { <HealthBadge health=h/> })}
                            </span>
                        }
                    }).collect_view()}
                </div>
            </td>
            <td class="metric-cell">{model.key_metric.map(|m| {
                let (first, last) = (m.versions.first().copied(), m.versions.last().copied());
                let label = match (first, last) {
                    (Some(f), Some(l)) => format!("{}: {} at v{}, {} at v{}", m.key, format::compact(f.value), f.version, format::compact(l.value), l.version),
                    _ => m.key.clone(),
                };
                view! {
                    <Sparkline values=m.versions.iter().map(|v| v.value).collect() label/>
                    <span class="metric-last"><span class="muted small">{m.key.clone()}</span>" "{last.map(|l| format::compact(l.value))}</span>
                }
            })}</td>
            <td class="muted">{format::time(&model.updated_at)}</td>
        </tr>
    }
}
