//! The console: the HTML shell, the router and the pages.

mod chart;
mod components;
mod diff;
mod format;
mod live;
mod pages;
mod theme;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{Lazy, LazyRoute, SsrMode, lazy_route, path};

use pages::{
    AuditEntryPage, AuditPage, EnvironmentsPage, ModelPage, ModelsPage, NotFound, ReviewsPage, SignInPage, TokensPage,
    UsersPage, VersionPage,
};

use crate::domain::{Me, Permission, Roles, allows};
use crate::error::ApiError;
use crate::server_fns::{SignIn, SignOut, current_user, pending_reviews};
use live::LiveChanges;
use theme::ThemeToggle;

/// Declares each screen but the models list and sign-in as a lazy route: its code is split into a
/// WASM chunk of its own (`scripts/build.sh` splits it out), fetched on the first visit to it. The
/// models list, where everyone lands, thus loads 290 KB instead of 430 KB; the model page costs its
/// first visit some 250 KB more over its shared chunks than it did in the main bundle.
macro_rules! lazy_pages {
    ($($route:ident => $page:ident),* $(,)?) => {$(
        #[doc = concat!("[`", stringify!($page), "`], loaded on first visit.")]
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_route: Self) -> AnyView {
                $page().into_any()
            }
        }
    )*};
}

lazy_pages! {
    ModelRoute => ModelPage,
    VersionRoute => VersionPage,
    TokensRoute => TokensPage,
    UsersRoute => UsersPage,
    EnvironmentsRoute => EnvironmentsPage,
    ReviewsRoute => ReviewsPage,
    AuditRoute => AuditPage,
    AuditEntryRoute => AuditEntryPage,
}

/// Who is signed in, loaded once per sign-in or sign-out; pages read it to hide what the
/// server would refuse.
pub type CurrentUser = Resource<Result<Option<Me>, ApiError>>;

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme::chosen()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="stylesheet" href=format!("/{}/modelgate.css", options.site_pkg_dir)/>
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

/// Sends this page's Content-Security-Policy: the inline hydration script is allowed by its
/// nonce, the WASM by `'wasm-unsafe-eval'`, everything else only from this origin.
#[cfg(feature = "ssr")]
fn set_page_csp() {
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
    else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'self'"
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The root component: header, routes and a marker that tells tests the WASM has hydrated.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    set_page_csp();
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    provide_context(sign_in);
    let user: CurrentUser =
        Resource::new(move || (sign_in.version().get(), sign_out.version().get()), |_| current_user());
    provide_context(user);
    LiveChanges::provide(move || matches!(user.get(), Some(Ok(Some(_)))));
    let rollback_changes = LiveChanges::counter(|c| c.kind == "rollback");
    let pending = Resource::new(
        move || (user.get().map(|u| u.ok().flatten().is_some()), rollback_changes.get()),
        |(signed_in, _)| async move {
            match signed_in {
                Some(true) => pending_reviews().await.unwrap_or(0),
                _ => 0,
            }
        },
    );
    Effect::new(move |_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title formatter=|text: String| if text.is_empty() { "Modelgate".to_string() } else { format!("{text} · Modelgate") }/>
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="brand-mark">"◆"</span>
                    " Modelgate"
                </A>
                <nav class="topnav">
                    <A href="/">"Models"</A>
                    <A href="/reviews">
                        "Reviews"
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                let n = pending.await;
                                (n > 0).then(|| view! { <span class="count-badge" aria-label=format!("{n} awaiting review")>{n}</span> })
                            })}
                        </Transition>
                    </A>
                    <A href="/tokens">"API tokens"</A>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let roles: Roles = user.await.ok().flatten().map(|me| me.roles.into_iter().collect()).unwrap_or_default();
                            view! {
                                {allows(&roles, Permission::Audit).then(|| view! { <A href="/audit">"Audit"</A> })}
                                {allows(&roles, Permission::ManageUsers).then(|| view! { <A href="/admin/users">"Users"</A> })}
                                {allows(&roles, Permission::ManageEnvironments).then(|| view! { <A href="/admin/environments">"Environments"</A> })}
                            }
                        })}
                    </Transition>
                    <a href="/api/v1/docs" rel="external">"API"</a>
                </nav>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        user.await.ok().flatten().map(|me| view! {
                            <div class="whoami">
                                <span><span class="signed-in-as">"Signed in as "</span><strong>{me.display_name.clone()}</strong></span>
                                <span class="roles">
                                    {me.roles.iter().map(|r| view! { <span class="role">{r.as_str()}</span> }).collect_view()}
                                </span>
                                <ActionForm action=sign_out attr:class="sign-out">
                                    <button type="submit" class="link">"Sign out"</button>
                                </ActionForm>
                            </div>
                        })
                    })}
                </Transition>
                <ThemeToggle/>
            </header>
            <main class="page">
                <Routes fallback=|| view! { <NotFound/> }>
                    <Route path=path!("/sign-in") view=SignInPage ssr=SsrMode::Async/>
                    <Route path=path!("/") view=ModelsPage ssr=SsrMode::Async/>
                    <Route path=path!("/models/:name") view={Lazy::<ModelRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/models/:name/versions/:number") view={Lazy::<VersionRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/tokens") view={Lazy::<TokensRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users") view={Lazy::<UsersRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/admin/environments") view={Lazy::<EnvironmentsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/reviews") view={Lazy::<ReviewsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/audit") view={Lazy::<AuditRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/audit/:seq") view={Lazy::<AuditEntryRoute>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
