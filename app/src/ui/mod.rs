//! The console: the HTML shell, the router and the pages.

mod components;
mod format;
mod pages;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use pages::{ModelPage, ModelsPage, NotFound, VersionPage};

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: header, routes and a marker that tells tests the WASM has hydrated.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    Effect::new(move |_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/modelgate.css"/>
        <Title formatter=|text: String| if text.is_empty() { "Modelgate".to_string() } else { format!("{text} · Modelgate") }/>
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="brand-mark">"◆"</span>
                    " Modelgate"
                </A>
                <nav class="topnav">
                    <A href="/">"Models"</A>
                    <a href="/api/v1/docs" rel="external">"API"</a>
                </nav>
            </header>
            <main class="page">
                <Routes fallback=|| view! { <NotFound/> }>
                    <Route path=path!("/") view=ModelsPage ssr=SsrMode::Async/>
                    <Route path=path!("/models/:name") view=ModelPage ssr=SsrMode::Async/>
                    <Route path=path!("/models/:name/versions/:number") view=VersionPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
