//! Building blocks used by several pages: error panels, badges, loading states, broken rules.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::domain::{GuardrailCheck, Health};
use crate::error::{ApiError, ErrorCode};

/// Shows an error to a person; on the server it also sets the HTTP status (404 for missing things).
#[component]
pub fn ErrorPanel(error: ApiError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let status = axum::http::StatusCode::from_u16(error.code.status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        response.set_status(status);
    }
    let title = match error.code {
        ErrorCode::NotFound => "Not found",
        ErrorCode::Internal => "Something went wrong",
        _ => "Request refused",
    };
    view! {
        <Title text=title/>
        <section class="panel error-panel" role="alert">
            <h2>{title}</h2>
            <p>{error.message}</p>
            <a href="/">"Back to models"</a>
        </section>
    }
}

/// The inline message under a form after a failed or successful action.
#[component]
pub fn ActionResult<T: Clone + Send + Sync + 'static>(
    value: impl Fn() -> Option<Result<T, ApiError>> + Send + Sync + 'static,
    #[prop(into)] success: String,
) -> impl IntoView {
    move || match value() {
        Some(Ok(_)) => view! { <p class="form-note ok" role="status">{success.clone()}</p> }.into_any(),
        Some(Err(e)) => view! { <p class="form-note err" role="alert">{e.message}</p> }.into_any(),
        None => ().into_any(),
    }
}

/// A form's reference that empties the form each time `action` succeeds, so the next entry starts
/// afresh (and is not sent twice by mistake); the page refetches around it, keeping what was
/// typed otherwise.
pub fn emptied_on_success<A>(action: ServerAction<A>) -> NodeRef<leptos::html::Form>
where
    A: leptos::server_fn::ServerFn + Clone + Send + Sync + 'static,
    A::Output: Send + Sync + 'static,
    A::Error: Send + Sync + 'static,
{
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if action.value().with(|v| matches!(v, Some(Ok(_))))
            && let Some(form) = form.get_untracked()
        {
            form.reset();
        }
    });
    form
}

/// The placeholder shown while data loads.
#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" aria-busy="true">"Loading…"</p> }
}

/// A version's guardrail health as a coloured badge.
#[component]
pub fn HealthBadge(health: Health) -> impl IntoView {
    let class = match health {
        Health::Healthy => "badge ok health",
        Health::Warning => "badge warn health",
        Health::Failing => "badge danger health",
        Health::Unknown => "badge muted health",
    };
    view! { <span class=class data-health=health.as_str()>{health.as_str()}</span> }
}

/// The guardrails a version fails, each as written with the value observed
/// (`p99(latency_ms, last 100) <= 250 — observed 438.2`) or, for a comparison, its evidence (shift,
/// interval, baseline, points, statistic), linking to the metric's chart when `charts` (the version
/// page) is given.
#[component]
pub fn BrokenRules(broken: Vec<GuardrailCheck>, #[prop(optional, into)] charts: Option<String>) -> impl IntoView {
    view! {
        <ul class="broken-rules">
            {broken.into_iter().map(|c| {
                let observed = c.observed.map_or_else(|| "no points".to_string(), crate::ui::format::significant);
                let rule = c.guardrail.describe();
                let rule = match &charts {
                    Some(page) => {
                        let href = format!("{page}#{}", crate::ui::chart::anchor(&c.guardrail.metric));
                        view! { <a href=href><code>{rule}</code></a> }.into_any()
                    }
                    None => view! { <code>{rule}</code> }.into_any(),
                };
                match c.evidence.is_some() {
                    true => view! { <li>{rule}" — "<strong class="evidence">{c.evidence_text()}</strong></li> }.into_any(),
                    false => view! { <li>{rule}" — observed "<strong>{observed}</strong></li> }.into_any(),
                }
            }).collect_view()}
        </ul>
    }
}
