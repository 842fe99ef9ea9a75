//! The page for URLs that name nothing.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::error::ApiError;
use crate::ui::components::ErrorPanel;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found"/>
        <ErrorPanel error=ApiError::not_found("There is no page at this address.")/>
    }
}
