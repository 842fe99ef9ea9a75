//! Building blocks used by several pages: error panels, badges, loading states.

use leptos::prelude::*;

use crate::domain::Health;
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
