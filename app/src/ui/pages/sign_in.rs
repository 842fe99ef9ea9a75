//! The sign-in page: the only page an anonymous visitor sees.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::server_fns::SignIn;

#[component]
pub fn SignInPage() -> impl IntoView {
    let sign_in = expect_context::<ServerAction<SignIn>>();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_else(|| "/".into());
    let error = move || sign_in.value().get().and_then(Result::err).map(|e| e.message);
    view! {
        <Title text="Sign in"/>
        <section class="panel sign-in">
            <h1>"Sign in"</h1>
            <p class="muted">"Modelgate keeps every model version, who deployed it, and who approved the change."</p>
            <ActionForm action=sign_in attr:class="stack-form" attr:id="sign-in">
                <input type="hidden" name="next" value=next/>
                <label>"Username"<input type="text" name="username" autocomplete="username" required autofocus/></label>
                <label>"Password"<input type="password" name="password" autocomplete="current-password" required/></label>
                {move || error().map(|message| view! { <p class="form-note err" role="alert">{message}</p> })}
                <button type="submit" class="primary">"Sign in"</button>
            </ActionForm>
        </section>
    }
}
