//! Administration: users and their roles (admins), and API tokens (everyone, for themselves).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::domain::{ApiToken, Role, User};
use crate::server_fns::{
    CreateToken, CreateUser, ResetPassword, RevokeToken, SetUserDisabled, SetUserRoles, list_users, tokens_page,
};
use crate::ui::components::{ActionResult, ErrorPanel, Loading, emptied_on_success};
use crate::ui::format;

/// Checkboxes named `<field>[<role>]` (`roles[operator]`), one per role offered, ticked for the
/// roles in `checked`.
#[component]
pub(super) fn RoleBoxes(
    offered: Vec<Role>,
    #[prop(optional)] checked: Vec<Role>,
    #[prop(default = "roles")] field: &'static str,
    #[prop(default = "Roles")] legend: &'static str,
) -> impl IntoView {
    view! {
        <fieldset class="role-boxes">
            <legend>{legend}</legend>
            {offered.into_iter().map(|r| view! {
                <label class="check">
                    <input type="checkbox" name=format!("{field}[{}]", r.as_str()) checked=checked.contains(&r)/>
                    {r.as_str()}
                </label>
            }).collect_view()}
        </fieldset>
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let disable = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let roles = ServerAction::<SetUserRoles>::new();
    let users = Resource::new(
        move || (create.version().get(), disable.version().get(), reset.version().get(), roles.version().get()),
        |_| list_users(),
    );
    view! {
        <Title text="Users"/>
        <div class="page-head"><h1>"Users"</h1></div>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(list) => view! {
                        <section class="panel flush">
                            <table class="table" id="users">
                                <thead><tr>
                                    <th scope="col">"User"</th><th scope="col">"Roles"</th><th scope="col">"Since"</th>
                                    <th scope="col">"Status"</th><th scope="col">"Actions"</th>
                                </tr></thead>
                                <tbody>{list.into_iter().map(|u| view! { <UserRow user=u disable reset roles/> }).collect_view()}</tbody>
                            </table>
                        </section>
                        <AddUser create/>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
        <ActionResult value=move || disable.value().get() success="Saved."/>
        <ActionResult value=move || roles.value().get() success="Roles saved."/>
        <ActionResult value=move || reset.value().get() success="Password reset; the user's sessions were ended."/>
    }
}

#[component]
fn AddUser(create: ServerAction<CreateUser>) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"Add a user"</h2>
            <ActionForm action=create node_ref=emptied_on_success(create) attr:class="stack-form narrow" attr:id="create-user">
                <label>"Username"<input type="text" name="username" required maxlength="64"/></label>
                <label>"Display name"<input type="text" name="display_name" maxlength="100"/></label>
                <label>"Initial password (12+ characters)"<input type="password" name="password" required minlength="12" autocomplete="new-password"/></label>
                <RoleBoxes offered=Role::ALL.to_vec()/>
                <button type="submit" class="primary">"Add user"</button>
            </ActionForm>
            <ActionResult value=move || create.value().get() success="User added."/>
        </section>
    }
}

#[component]
fn UserRow(
    user: User,
    disable: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetPassword>,
    roles: ServerAction<SetUserRoles>,
) -> impl IntoView {
    let (name_disable, name_reset, name_roles) = (user.username.clone(), user.username.clone(), user.username.clone());
    let current = user.roles.clone();
    let disabled = user.disabled;
    let confirming = RwSignal::new(false);
    view! {
        <tr data-user=user.username.clone()>
            <td><span class="strong">{user.display_name.clone()}</span><div class="muted small">{user.username.clone()}</div></td>
            <td>
                <ActionForm action=roles attr:class="roles-form">
                    <input type="hidden" name="username" value=name_roles/>
                    <RoleBoxes offered=Role::ALL.to_vec() checked=current/>
                    <button type="submit">"Save roles"</button>
                </ActionForm>
            </td>
            <td class="muted">{format::time(&user.created_at)}</td>
            <td>{if disabled { view! { <span class="badge danger">"disabled"</span> }.into_any() } else { view! { <span class="badge live">"active"</span> }.into_any() }}</td>
            <td class="actions">
                <ActionForm action=disable attr:class="inline-form">
                    <input type="hidden" name="username" value=name_disable.clone()/>
                    <input type="hidden" name="disabled" value=(!disabled).to_string()/>
                    {move || if disabled {
                        view! { <button type="submit">"Enable"</button> }.into_any()
                    } else if confirming.get() {
                        view! {
                            <span class="confirm" role="group" aria-label="Confirm">
                                {format!("Disable {name_disable}? Their sessions and tokens stop working. ")}
                                <button type="submit" class="danger">"Disable"</button>
                                <button type="button" on:click=move |_| confirming.set(false)>"Keep"</button>
                            </span>
                        }.into_any()
                    } else {
                        view! { <button type="button" class="danger" on:click=move |_| confirming.set(true)>"Disable…"</button> }.into_any()
                    }}
                </ActionForm>
                <ActionForm action=reset attr:class="inline-form">
                    <input type="hidden" name="username" value=name_reset/>
                    <input type="password" name="password" placeholder="New password" minlength="12" required autocomplete="new-password" aria-label="New password"/>
                    <button type="submit">"Reset password"</button>
                </ActionForm>
            </td>
        </tr>
    }
}

#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let page = Resource::new(move || (create.version().get(), revoke.version().get()), |_| tokens_page());
    view! {
        <Title text="API tokens"/>
        <div class="page-head">
            <div>
                <h1>"API tokens"</h1>
                <p class="muted">"For pipelines and deploy systems: send as " <code>"Authorization: Bearer <token>"</code>". A token holds some of its owner's roles, never more."</p>
            </div>
        </div>
        {move || create.value().get().and_then(Result::ok).map(|created| view! {
            <section class="banner ok" role="status" id="new-token">
                <strong>"Copy this token now: it is not shown again."</strong>
                <span class="secret-row">
                    <code class="secret">{created.token.clone()}</code>
                    <CopyButton text=created.token/>
                </span>
            </section>
        })}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(page) => view! {
                        <TokenTable tokens=page.tokens revoke/>
                        <CreateTokenForm create offered=page.my_roles/>
                    }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
        <ActionResult value=move || revoke.value().get() success="Token revoked."/>
    }
}

#[component]
fn TokenTable(tokens: Vec<ApiToken>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    if tokens.is_empty() {
        return view! { <section class="panel empty">"No API tokens yet."</section> }.into_any();
    }
    view! {
        <section class="panel flush">
            <table class="table" id="tokens">
                <thead><tr>
                    <th scope="col">"Name"</th><th scope="col">"Owner"</th><th scope="col">"Roles"</th>
                    <th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col"></th>
                </tr></thead>
                <tbody>{tokens.into_iter().map(|t| view! { <TokenRow token=t revoke/> }).collect_view()}</tbody>
            </table>
        </section>
    }
    .into_any()
}

#[component]
fn CreateTokenForm(create: ServerAction<CreateToken>, offered: Vec<Role>) -> impl IntoView {
    let agent = offered.contains(&Role::Agent);
    view! {
        <section class="panel">
            <h2>"Create a token"</h2>
            <ActionForm action=create node_ref=emptied_on_success(create) attr:class="stack-form narrow" attr:id="create-token">
                <label>"Name"<input type="text" name="name" required maxlength="64" placeholder="e.g. ci-pipeline"/></label>
                <input type="hidden" name="owner" value=""/>
                <RoleBoxes offered/>
                <label>"Expires in days (empty: never)"<input type="text" name="expires_in_days" inputmode="numeric" maxlength="4"/></label>
                {agent.then(|| view! {
                    <label>"Environments (an agent token; comma-separated)"
                        <input type="text" name="environments" placeholder="production" maxlength="500"/>
                    </label>
                })}
                <button type="submit" class="primary">"Create token"</button>
            </ActionForm>
            {move || create.value().get().and_then(Result::err).map(|e| view! { <p class="form-note err" role="alert">{e.message}</p> })}
        </section>
    }
}

#[component]
fn TokenRow(token: ApiToken, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let optional = |t: &Option<String>| t.as_deref().map(format::time).unwrap_or_else(|| "—".into());
    let revoked = token.revoked_at.is_some();
    view! {
        <tr data-token=token.id>
            <td><span class="strong">{token.name.clone()}</span><div class="muted small"><code>{format!("{}…", token.prefix)}</code></div></td>
            <td>{token.owner.clone()}</td>
            <td>{token.roles.iter().map(|r| view! { <span class="badge">{r.as_str()}</span> }).collect_view()}</td>
            <td class="muted">{format::time(&token.created_at)}</td>
            <td class="muted">{optional(&token.expires_at)}</td>
            <td class="muted">{optional(&token.last_used_at)}</td>
            <td>
                {if revoked {
                    view! { <span class="badge danger">"revoked"</span> }.into_any()
                } else {
                    view! {
                        <ActionForm action=revoke attr:class="inline-form">
                            <input type="hidden" name="id" value=token.id/>
                            <button type="submit" class="danger">"Revoke"</button>
                        </ActionForm>
                    }.into_any()
                }}
            </td>
        </tr>
    }
}

/// Copies `text` to the clipboard, and says so.
#[component]
fn CopyButton(text: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        let _ = window().navigator().clipboard().write_text(&text);
        #[cfg(not(feature = "hydrate"))]
        let _ = &text;
        copied.set(true);
    };
    view! {
        <button type="button" class="copy" on:click=copy>{move || if copied.get() { "Copied" } else { "Copy" }}</button>
    }
}
