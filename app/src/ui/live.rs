//! One server-sent event subscription per browser tab, shared by every page: the latest
//! live-version change, rollback request change, health change or rollout change, so open pages
//! refetch what it touched without a reload; and the latest agent report or rollout, which the
//! fleet panels apply as they come. (The version page keeps its own subscription for new points.)

use leptos::prelude::*;

/// A change announced by the server: its number, kind and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: u64,
    pub kind: &'static str,
    pub model: String,
}

/// A fleet event (an agent's report, a rollout's change) numbered in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetChange {
    pub seq: u64,
    pub event: crate::domain::ServerEvent,
}

/// The latest change and the latest fleet event, as signals.
#[derive(Debug, Clone, Copy)]
pub struct LiveChanges {
    latest: ReadSignal<Option<Change>>,
    fleet: ReadSignal<Option<FleetChange>>,
}

impl LiveChanges {
    /// Provides the latest change as context; in the browser, subscribes while `signed_in` holds
    /// (a subscription refused before sign-in would not retry by itself).
    pub fn provide(signed_in: impl Fn() -> bool + Send + Sync + 'static) {
        let (latest, set_latest) = signal(None::<Change>);
        let (fleet, set_fleet) = signal(None::<FleetChange>);
        provide_context(LiveChanges { latest, fleet });
        #[cfg(feature = "hydrate")]
        {
            let source = StoredValue::new_local(None::<web_sys::EventSource>);
            Effect::new(move |_| {
                let wanted = signed_in();
                source.update_value(|open| match (wanted, open.take()) {
                    (true, None) => *open = subscribe(set_latest, set_fleet),
                    (false, Some(es)) => es.close(),
                    (_, kept) => *open = kept,
                });
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (signed_in, set_latest, set_fleet);
    }

    /// The latest fleet event (none outside a signed-in console).
    pub fn fleet() -> Option<ReadSignal<Option<FleetChange>>> {
        use_context::<LiveChanges>().map(|l| l.fleet)
    }

    /// A counter that moves whenever a change `accepts` arrives: put it in a resource's source.
    pub fn counter(accepts: impl Fn(&Change) -> bool + Send + Sync + 'static) -> Memo<u64> {
        let latest = use_context::<LiveChanges>().map(|l| l.latest);
        Memo::new(move |previous: Option<&u64>| {
            let previous = previous.copied().unwrap_or(0);
            match latest.and_then(|l| l.get()) {
                Some(change) if accepts(&change) => change.id,
                _ => previous,
            }
        })
    }
}

#[cfg(feature = "hydrate")]
fn subscribe(
    set_latest: WriteSignal<Option<Change>>,
    set_fleet: WriteSignal<Option<FleetChange>>,
) -> Option<web_sys::EventSource> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    let source = web_sys::EventSource::new("/api/v1/events?types=deployment,rollback,health,rollout,agent").ok()?;
    let arrived = std::rc::Rc::new(std::cell::Cell::new(0u64));
    for kind in ["deployment", "rollback", "health", "rollout", "agent"] {
        let arrived = arrived.clone();
        let on_event = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let Some(text) = ev.data().as_string() else { return };
            let Ok(event) = serde_json::from_str::<crate::domain::ServerEvent>(&text) else { return };
            if matches!(kind, "rollout" | "agent") {
                arrived.set(arrived.get() + 1);
                set_fleet.set(Some(FleetChange { seq: arrived.get(), event: event.clone() }));
            }
            if kind != "agent" {
                let id = ev.last_event_id().parse().unwrap_or_default();
                set_latest.set(Some(Change { id, kind, model: event.model().to_string() }));
            }
        });
        let _ = source.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
        on_event.forget();
    }
    close_when_left(&source);
    Some(source)
}

/// Closes an event stream when the page is left. A page kept in the back/forward cache would
/// otherwise hold its connection open, and a browser opens only six per site: a few pages later,
/// the console's own requests would wait behind them. A page restored from that cache reloads,
/// to show current data with fresh subscriptions.
#[cfg(feature = "hydrate")]
pub fn close_when_left(source: &web_sys::EventSource) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    let Some(window) = web_sys::window() else { return };
    let source = source.clone();
    let on_hide = Closure::<dyn Fn()>::new(move || source.close());
    let on_show = Closure::<dyn Fn(web_sys::Event)>::new(|ev: web_sys::Event| {
        let persisted = js_sys::Reflect::get(&ev, &"persisted".into()).ok().and_then(|v| v.as_bool());
        if persisted == Some(true)
            && let Some(window) = web_sys::window()
        {
            let _ = window.location().reload();
        }
    });
    let _ = window.add_event_listener_with_callback("pagehide", on_hide.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("pageshow", on_show.as_ref().unchecked_ref());
    on_hide.forget();
    on_show.forget();
}
