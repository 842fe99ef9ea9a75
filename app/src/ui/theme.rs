//! Light and dark: the console follows the system's colour scheme until someone picks one with the
//! header's toggle, which is remembered in a cookie so the server renders the next page in it.

use leptos::prelude::*;

/// The cookie holding the chosen scheme, `light` or `dark`.
const COOKIE: &str = "modelgate_theme";

/// The scheme this request's cookie chose, for `<html data-theme>` (rendered on the server only);
/// `None` follows the system.
pub fn chosen() -> Option<&'static str> {
    #[cfg(feature = "ssr")]
    {
        let parts = use_context::<axum::http::request::Parts>()?;
        match crate::session_cookie::cookie(&parts.headers, COOKIE)?.as_str() {
            "light" => Some("light"),
            "dark" => Some("dark"),
            _ => None,
        }
    }
    #[cfg(not(feature = "ssr"))]
    None
}

/// Switches between light and dark from whichever is showing, and remembers the choice for a year.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let switch = move |_| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(root) = document().document_element() else { return };
            let showing_dark = match root.get_attribute("data-theme").as_deref() {
                Some("dark") => true,
                Some("light") => false,
                _ => window().match_media("(prefers-color-scheme: dark)").ok().flatten().is_some_and(|m| m.matches()),
            };
            let next = if showing_dark { "light" } else { "dark" };
            let _ = root.set_attribute("data-theme", next);
            let cookie = format!("{COOKIE}={next}; Path=/; Max-Age=31536000; SameSite=Lax");
            let _ = document().unchecked_into::<web_sys::HtmlDocument>().set_cookie(&cookie);
        }
    };
    view! {
        <button type="button" class="theme-toggle" on:click=switch title="Switch between light and dark"
            aria-label="Switch between light and dark">
            <span aria-hidden="true">"◐"</span>
        </button>
    }
}
