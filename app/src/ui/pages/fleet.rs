//! The serving fleet on the model page: each environment card's instances by group and version
//! and its rollout, moved by agents' reports as they arrive; and the time control showing what
//! every environment had live and served at a chosen moment.

use leptos::prelude::*;

use crate::domain::{Fleet, GroupCount, RolloutState, ServerEvent};
use crate::server_fns::{ModelStateAt, environment_fleet};
use crate::ui::components::ErrorPanel;
use crate::ui::format;
use crate::ui::live::LiveChanges;

/// An environment's agents and rollout, live.
#[component]
pub fn FleetPanel(model: String, environment: String) -> impl IntoView {
    let key = (model.clone(), environment.clone());
    let fleet = Resource::new(move || key.clone(), |(model, environment)| environment_fleet(model, environment));
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match fleet.await {
                    Ok(fleet) => view! { <LiveFleet fleet/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn LiveFleet(fleet: Fleet) -> impl IntoView {
    let (model, environment) = (fleet.model.clone(), fleet.environment.clone());
    let fleet = RwSignal::new(fleet);
    if let Some(changes) = LiveChanges::fleet() {
        Effect::new(move |_| {
            let Some(change) = changes.get() else { return };
            match change.event {
                ServerEvent::Agent { model: m, environment: e, agent } if m == model && e == environment => {
                    fleet.update(|f| f.apply(agent));
                }
                ServerEvent::Rollout { rollout } if rollout.model == model && rollout.environment == environment => {
                    fleet.update(|f| {
                        if f.rollout.as_ref().is_none_or(|r| r.revision <= rollout.revision) {
                            f.rollout = Some(rollout);
                        }
                    });
                }
                _ => {}
            }
        });
    }
    move || {
        let f = fleet.get();
        if f.agents.is_empty() {
            return view! { <p class="fleet muted small">"No serving agents report here."</p> }.into_any();
        }
        let rollout = f.rollout.clone().filter(|r| Some(r.version) == f.live_version);
        let rollout_line = rollout.map(|r| {
            let serving = f
                .agents
                .iter()
                .filter(|a| {
                    a.state == crate::domain::AgentState::Ready
                        && a.version == Some(r.version)
                        && a.counter >= r.revision
                })
                .count();
            let class = match r.state {
                RolloutState::Converged => "badge ok",
                RolloutState::PartiallyConverged => "badge danger",
                _ => "badge warn",
            };
            let when = match (&r.converged_at, r.state) {
                (Some(at), _) => format!(" · converged {}", format::time(at)),
                (None, RolloutState::PartiallyConverged) => {
                    format!(" · deadline passed {}", format::time(&r.deadline_at))
                }
                _ => format!(" · deadline {}", format::time(&r.deadline_at)),
            };
            let stragglers = (!r.stragglers.is_empty()).then(|| format!(" · stragglers: {}", r.stragglers.join(", ")));
            view! {
                <p class="rollout" data-rollout=r.state.as_str()>
                    <span class=class>{r.state.label()}</span>
                    <span>{format!(" {serving} of {} on v{}", f.agents.len(), r.version)}</span>
                    <span class="muted small">{when}{stragglers}</span>
                </p>
            }
        });
        view! {
            <div class="fleet">
                {rollout_line}
                <ul class="fleet-groups">
                    {f.groups.iter().map(|g| view! { <GroupLine group=g.clone() live=f.live_version/> }).collect_view()}
                </ul>
            </div>
        }
        .into_any()
    }
}

/// One group: its summary and a bar of its instances by version (SVG: the security policy
/// allows no inline styles).
#[component]
fn GroupLine(group: GroupCount, live: Option<i64>) -> impl IntoView {
    let total = f64::from(group.instances.max(1));
    let mut x = 0.0;
    let segments: Vec<_> = group
        .serving
        .iter()
        .map(|c| (if live.is_some() && c.version == live { "seg live" } else { "seg other" }, c.instances))
        .chain((group.lost > 0).then_some(("seg lost", group.lost)))
        .map(|(class, instances)| {
            let width = 100.0 * f64::from(instances) / total;
            x += width;
            (class, x - width, width)
        })
        .collect();
    view! {
        <li data-group=group.group.clone()>
            <span class="fleet-summary">{group.summary()}</span>
            <svg class="fleet-bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">
                <rect class="seg track" x="0" y="0" width="100" height="6"/>
                {segments.into_iter().map(|(class, x, width)| view! {
                    <rect class=class x=format!("{x:.2}") y="0" width=format!("{width:.2}") height="6"/>
                }).collect_view()}
            </svg>
        </li>
    }
}

/// The time control: every environment's live version and what its groups served at a moment.
#[component]
pub fn StateAtPanel(model: String) -> impl IntoView {
    let show = ServerAction::<ModelStateAt>::new();
    view! {
        <section class="panel state-at">
            <h2>"At a moment"</h2>
            <ActionForm action=show attr:class="inline-form">
                <input type="hidden" name="model" value=model/>
                <label>"Time (UTC)"<input type="datetime-local" name="at" step="1" required/></label>
                <button type="submit">"Show"</button>
            </ActionForm>
            {move || show.value().get().map(|result| match result {
                Ok(states) => view! {
                    <table class="state-at-table">
                        <thead><tr><th>"Environment"</th><th>"Live"</th><th>"Since"</th><th>"Served"</th></tr></thead>
                        <tbody>
                            {states.into_iter().map(|s| view! {
                                <tr data-env=s.environment.clone()>
                                    <td>{s.environment.clone()}</td>
                                    <td class="strong">{format::version(s.live_version)}</td>
                                    <td class="muted">{s.since.as_deref().map(format::time)}</td>
                                    <td>
                                        {if s.groups.is_empty() {
                                            view! { <span class="muted">"no agent reports"</span> }.into_any()
                                        } else {
                                            s.groups.iter().map(|g| view! { <div>{g.summary()}</div> }).collect_view().into_any()
                                        }}
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
                Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
            })}
        </section>
    }
}
