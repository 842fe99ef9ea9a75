//! The review queue: rollback requests awaiting approval and break-glass rollbacks awaiting
//! acknowledgement, updated live as they change anywhere; below them, what was decided lately.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::rollback::Comparison;
use crate::domain::{RollbackKind, RollbackRequest, RollbackStatus, RolloutState, percent_encoded};
use crate::server_fns::{
    AcknowledgeBreakGlass, Awaiting, CancelRollback, ReviewQueueData, ReviewRollback, review_queue,
};
use crate::ui::components::{ActionResult, BrokenRules, ErrorPanel, HealthBadge, Loading};
use crate::ui::format;
use crate::ui::live::LiveChanges;

/// The forms of a review card.
#[derive(Clone, Copy)]
struct ReviewActions {
    review: ServerAction<ReviewRollback>,
    cancel: ServerAction<CancelRollback>,
    acknowledge: ServerAction<AcknowledgeBreakGlass>,
}

#[component]
pub fn ReviewsPage() -> impl IntoView {
    let actions =
        ReviewActions { review: ServerAction::new(), cancel: ServerAction::new(), acknowledge: ServerAction::new() };
    let elsewhere = LiveChanges::counter(|c| c.kind == "rollback" || c.kind == "deployment");
    let queue = Resource::new(
        move || {
            (
                actions.review.version().get(),
                actions.cancel.version().get(),
                actions.acknowledge.version().get(),
                elsewhere.get(),
            )
        },
        |_| review_queue(),
    );
    view! {
        <Title text="Review queue"/>
        <div class="page-head">
            <div>
                <h1>"Review queue"</h1>
                <p class="muted">"Rollbacks waiting for a second person: approve or reject requests, acknowledge break-glass rollbacks."</p>
            </div>
        </div>
        <p class="sr-status">
            {move || actions.review.value().get().map(|r| match r {
                Ok(r) => view! { <span class="form-note ok" role="status">{decided(&r)}</span> }.into_any(),
                Err(e) => view! { <span class="form-note err" role="alert">{e.message}</span> }.into_any(),
            })}
        </p>
        <ActionResult value=move || actions.cancel.value().get() success="Request cancelled."/>
        <ActionResult value=move || actions.acknowledge.value().get() success="Break glass acknowledged."/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match queue.await {
                    Ok(data) => view! { <Queue data actions/> }.into_any(),
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// What an approval or rejection did, in words.
fn decided(r: &RollbackRequest) -> String {
    match r.status {
        RollbackStatus::Executed => {
            format!("Approved: {} in {} rolled back to v{}.", r.model, r.environment, r.to_version)
        }
        RollbackStatus::Stale => format!("Approved, but nothing changed: {}.", r.outcome),
        RollbackStatus::Rejected => format!("Request #{} rejected.", r.id),
        _ => format!("Approved: {} of {} approvals.", r.approvals, r.approvals_required),
    }
}

#[component]
fn Queue(data: ReviewQueueData, actions: ReviewActions) -> impl IntoView {
    let ReviewQueueData { awaiting, recent, me, may_review, may_request } = data;
    let cards = if awaiting.is_empty() {
        view! { <section class="panel empty">"Nothing awaits review."</section> }.into_any()
    } else {
        awaiting
            .into_iter()
            .map(|a| view! { <ReviewCard awaiting=a me=me.clone() may_review may_request actions/> })
            .collect_view()
            .into_any()
    };
    view! {
        <div class="review-list" id="review-queue">{cards}</div>
        <section class="panel flush">
            <header class="panel-head"><h2>"Recently decided"</h2></header>
            {if recent.is_empty() {
                view! { <p class="muted table-foot">"Nothing yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table" id="recent-rollbacks">
                        <thead><tr>
                            <th scope="col">"Request"</th><th scope="col">"Where"</th><th scope="col">"Change"</th>
                            <th scope="col">"Status"</th><th scope="col">"Outcome"</th><th scope="col">"Fleet"</th>
                            <th scope="col">"Closed"</th>
                        </tr></thead>
                        <tbody>{recent.into_iter().map(|r| view! {
                            <tr data-rollback=r.id>
                                <td>{format!("#{}", r.id)}" "<KindBadge kind=r.kind/></td>
                                <td><A href=format!("/models/{}", percent_encoded(&r.model))>{r.model.clone()}</A>{format!(" · {}", r.environment)}</td>
                                <td>{format!("v{} → v{}", r.from_version, r.to_version)}</td>
                                <td><StatusBadge status=r.status/></td>
                                <td class="muted">{r.outcome.clone()}</td>
                                <td><FleetBadge rollout=r.rollout converged_at=r.converged_at.clone()/></td>
                                <td class="muted small">{r.closed_at.as_deref().map(format::time)}</td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn ReviewCard(
    awaiting: Awaiting,
    me: String,
    may_review: bool,
    may_request: bool,
    actions: ReviewActions,
) -> impl IntoView {
    let Awaiting { request, health, broken, comparison } = awaiting;
    let mine = request.requester.as_deref() == Some(me.as_str());
    let id = request.id;
    let reviews = request.reviews.clone();
    let needs_ack = request.needs_acknowledgement();
    let action = if needs_ack {
        if !may_review {
            view! { <p class="muted small">"A reviewer must acknowledge this break glass."</p> }.into_any()
        } else if mine {
            view! { <p class="muted small">"You broke glass here; another reviewer must acknowledge it."</p> }
                .into_any()
        } else {
            view! {
                <ActionForm action=actions.acknowledge attr:class="review-form">
                    <input type="hidden" name="id" value=id/>
                    <label>"Comment"<input type="text" name="comment" maxlength="1000" placeholder="What did you check?"/></label>
                    <button type="submit" class="primary">"Acknowledge"</button>
                </ActionForm>
            }
            .into_any()
        }
    } else if mine {
        view! {
            <p class="muted small">"You requested this rollback; another reviewer must approve it."</p>
            {may_request.then(|| view! {
                <ActionForm action=actions.cancel attr:class="review-form">
                    <input type="hidden" name="id" value=id/>
                    <input type="hidden" name="comment" value=""/>
                    <button type="submit">"Cancel request"</button>
                </ActionForm>
            })}
        }
        .into_any()
    } else if may_review {
        view! {
            <ActionForm action=actions.review attr:class="review-form">
                <input type="hidden" name="id" value=id/>
                <label>"Comment"<input type="text" name="comment" maxlength="1000" placeholder="Required to reject"/></label>
                <button type="submit" name="decision" value="approve" class="primary">"Approve"</button>
                <button type="submit" name="decision" value="reject" class="danger">"Reject"</button>
            </ActionForm>
        }
        .into_any()
    } else {
        view! { <p class="muted small">"Only reviewers can approve or reject."</p> }.into_any()
    };
    let version_page = format!("/models/{}/versions/{}", percent_encoded(&request.model), request.from_version);
    let progress = if needs_ack {
        format!("executed {}", request.closed_at.as_deref().map(format::time).unwrap_or_default())
    } else {
        format!(
            "{} of {} approvals · expires {}",
            request.approvals,
            request.approvals_required,
            format::time(&request.expires_at)
        )
    };
    view! {
        <article class="panel review-card" class:break-glass=needs_ack data-rollback=id>
            <header class="review-head">
                <h2>
                    <A href=format!("/models/{}", percent_encoded(&request.model))>{request.model.clone()}</A>
                    <span class="muted">{format!(" · {}", request.environment)}</span>
                </h2>
                <span>{format!("#{id} ")}<KindBadge kind=request.kind/></span>
            </header>
            <p class="big">{format!("v{} → v{}", request.from_version, request.to_version)}" "<FleetBadge rollout=request.rollout converged_at=request.converged_at.clone()/></p>
            <p class="muted small">{format!("requested by {} · {} · {progress}", request.requested_by, format::time(&request.requested_at))}</p>
            <q class="reason">{request.reason.clone()}</q>
            <section class="evidence" aria-label="Evidence">
                <p>
                    <HealthBadge health/>
                    {format!("v{} is {} in {}", request.from_version, health.as_str(), request.environment)}
                    {(!broken.is_empty()).then_some(":")}
                </p>
                <BrokenRules broken charts=version_page/>
                <Comparison rows=comparison live=Some(request.from_version) target=Some(request.to_version)/>
            </section>
            {(!reviews.is_empty()).then(|| view! {
                <ul class="reviews">
                    {reviews.into_iter().map(|r| view! {
                        <li>{format!("{} {}d", r.actor, r.decision.as_str())}
                            {(!r.comment.is_empty()).then(|| view! { ": "<q>{r.comment.clone()}</q> })}
                        </li>
                    }).collect_view()}
                </ul>
            })}
            {action}
        </article>
    }
}

#[component]
fn KindBadge(kind: RollbackKind) -> impl IntoView {
    match kind {
        RollbackKind::Request => ().into_any(),
        RollbackKind::Automatic => view! { <span class="badge warn">"automatic"</span> }.into_any(),
        RollbackKind::BreakGlass => view! { <span class="badge danger">"break glass"</span> }.into_any(),
    }
}

#[component]
fn StatusBadge(status: RollbackStatus) -> impl IntoView {
    let class = match status {
        RollbackStatus::Executed => "badge live",
        RollbackStatus::Open => "badge",
        RollbackStatus::Stale | RollbackStatus::Expired | RollbackStatus::Cancelled => "badge muted",
        RollbackStatus::Rejected => "badge danger",
    };
    view! { <span class=class>{status.as_str()}</span> }
}

/// How far an executed rollback has spread through the serving fleet.
#[component]
fn FleetBadge(rollout: Option<RolloutState>, converged_at: Option<String>) -> impl IntoView {
    rollout.map(|state| {
        let class = match state {
            RolloutState::Converged => "badge ok",
            RolloutState::PartiallyConverged => "badge danger",
            _ => "badge warn",
        };
        let title = converged_at.as_deref().map(|at| format!("converged {}", format::time(at)));
        view! { <span class=class data-rollout=state.as_str() title=title>{format!("fleet {}", state.label())}</span> }
    })
}
