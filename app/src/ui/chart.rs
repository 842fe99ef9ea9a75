//! Metric charts drawn as SVG: a line per series, guardrail thresholds, deploy and rollback
//! markers, a tooltip with exact values (pointer or arrow keys), drag-to-zoom that re-queries at
//! the new resolution; and the sparkline of the versions table.

use leptos::prelude::*;

use crate::domain::{MetricAxis, Severity};
use crate::server_fns::{ChartData, ChartPoint, reload_chart};
use crate::ui::format;

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;
/// How many line colours the stylesheet has (`.c0`…`.c5`, light and dark): this version's series
/// first, the compared version's after (drawn dashed).
const COLOURS: usize = 6;

/// A deploy or rollback of the version, at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at_ms: i64,
    pub label: String,
    pub rollback: bool,
}

/// A stretch of time and a rule's verdict over it (a replay), drawn as a band on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct BandSpan {
    pub from_ms: i64,
    pub to_ms: i64,
    pub outcome: crate::domain::Outcome,
}

/// The data-space rectangle a chart shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub x0: f64,
    pub x1: f64,
    pub y0: f64,
    pub y1: f64,
}

impl Frame {
    /// Bounds of every point and threshold, padded so nothing touches the edges.
    pub fn of(data: &ChartData) -> Option<Frame> {
        let points = data.lines.iter().flat_map(|l| l.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for p in points {
            let x = p.x() as f64;
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(p.value()), y1.max(p.value()));
        }
        if !x0.is_finite() {
            return None;
        }
        for t in &data.thresholds {
            (y0, y1) = (y0.min(t.value), y1.max(t.value));
        }
        if x1 <= x0 {
            (x0, x1) = (x0 - 1.0, x1 + 1.0);
        }
        let pad = if y1 > y0 { (y1 - y0) * 0.06 } else { y0.abs().max(1.0) * 0.1 };
        Some(Frame { x0, x1, y0: y0 - pad, y1: y1 + pad })
    }

    fn sx(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)
    }

    fn sy(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)
    }

    /// The data x under a horizontal position given as a fraction of the drawing's width.
    fn x_at(&self, fraction: f64) -> f64 {
        let plot = ((fraction * W - LEFT) / (W - LEFT - RIGHT)).clamp(0.0, 1.0);
        self.x0 + plot * (self.x1 - self.x0)
    }
}

/// Round tick values covering `lo..=hi`, about `n` of them.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let raw = span / n.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = magnitude
        * match raw / magnitude {
            r if r < 1.5 => 1.0,
            r if r < 3.0 => 2.0,
            r if r < 7.0 => 5.0,
            _ => 10.0,
        };
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// An SVG path through the points.
fn path(points: &[ChartPoint], frame: &Frame) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    for (i, p) in points.iter().enumerate() {
        let cmd = if i == 0 { 'M' } else { 'L' };
        d.push_str(&format!("{cmd}{:.1},{:.1}", frame.sx(p.x() as f64), frame.sy(p.value())));
    }
    d
}

/// The point of a line nearest to `x` on the axis.
fn nearest(points: &[ChartPoint], x: f64) -> Option<ChartPoint> {
    points.iter().copied().min_by(|a, b| (a.x() as f64 - x).abs().total_cmp(&(b.x() as f64 - x).abs()))
}

/// Under the cursor at `x`: each line's index, label and nearest point.
fn under_cursor(data: &ChartData, x: f64) -> Vec<(usize, String, ChartPoint)> {
    data.lines.iter().enumerate().filter_map(|(i, l)| Some((i, l.label.clone(), nearest(&l.points, x)?))).collect()
}

fn axis_label(x: f64, axis: MetricAxis, per_version: bool) -> String {
    match axis {
        MetricAxis::Step if per_version => format!("v{x}"),
        MetricAxis::Step => format::compact(x),
        MetricAxis::Time => format::short_time(x as i64),
    }
}

fn exact_x(p: ChartPoint, axis: MetricAxis, per_version: bool) -> String {
    match axis {
        MetricAxis::Step if per_version => format!("v{}", p.x()),
        MetricAxis::Step => format!("step {}", p.x()),
        MetricAxis::Time => format::exact_time(p.x()),
    }
}

/// Where the pointer is across an element, as a fraction of its width (in the browser only).
fn pointer_fraction(ev: &leptos::ev::MouseEvent) -> Option<f64> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let element = ev.current_target()?.dyn_into::<web_sys::Element>().ok()?;
        let rect = element.get_bounding_client_rect();
        (rect.width() > 0.0).then(|| ((f64::from(ev.client_x()) - rect.left()) / rect.width()).clamp(0.0, 1.0))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}

/// What identifies a chart's data on the server, for re-queries.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSource {
    pub model: String,
    pub number: i64,
    pub compare: Option<i64>,
}

/// One metric's chart. With a `source` it can be zoomed (re-querying the server at the new
/// resolution), and `updates` — the keys of newly stored points — re-queries it when it names this
/// chart's key. `per_version` draws a metric against version numbers instead of steps.
#[component]
pub fn MetricChart(
    data: ChartData,
    #[prop(optional)] markers: Vec<Marker>,
    #[prop(optional)] source: Option<ChartSource>,
    #[prop(optional)] updates: Option<ReadSignal<(u64, Vec<String>)>>,
    #[prop(optional)] per_version: bool,
    /// A rule's replayed verdicts, drawn as a band along the time axis.
    #[prop(optional)]
    band: Vec<BandSpan>,
) -> impl IntoView {
    let key = data.key.clone();
    let banded = !band.is_empty();
    let axis = data.axis;
    let data = RwSignal::new(data);
    let zoom = RwSignal::new(None::<(i64, i64)>);
    let cursor = RwSignal::new(None::<f64>);
    let drag = RwSignal::new(None::<(f64, f64)>);
    let busy = RwSignal::new(false);
    let zoomable = source.is_some();
    let reload = {
        let (source, key) = (source.clone(), key.clone());
        move |range: Option<(i64, i64)>| {
            let (Some(source), key) = (source.clone(), key.clone()) else { return };
            busy.set(true);
            leptos::task::spawn_local(async move {
                let (from, to) = (range.map(|r| r.0), range.map(|r| r.1));
                if let Ok(fresh) = reload_chart(source.model, source.number, key, source.compare, axis, from, to).await
                {
                    data.set(fresh);
                }
                busy.set(false);
            });
        }
    };
    Effect::new({
        let (key, reload) = (key.clone(), reload.clone());
        move |seen: Option<u64>| {
            let Some(updates) = updates else { return 0 };
            let (n, keys) = updates.get();
            if seen.is_some_and(|s| s != n) && keys.contains(&key) {
                reload(zoom.get_untracked());
            }
            n
        }
    });
    let frame = Memo::new(move |_| data.with(Frame::of));
    let (title_id, desc_id) = (format!("chart-{key}-title"), format!("chart-{key}-desc"));
    let description = move || {
        data.with(|d| {
            let lines: Vec<String> = d
                .lines
                .iter()
                .map(|l| {
                    let (lo, hi) = l
                        .points
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.value()), hi.max(p.value())));
                    format!("{}: {} points, from {} to {}", l.label, l.total, format::compact(lo), format::compact(hi))
                })
                .collect();
            format!(
                "{} against {}. {}.",
                d.key,
                if axis == MetricAxis::Time { "time" } else { "step" },
                lines.join("; ")
            )
        })
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let (Some(f), Some(fr)) = (pointer_fraction(&ev), frame.get_untracked()) else { return };
        cursor.set(Some(fr.x_at(f)));
        if let Some((start, _)) = drag.get_untracked() {
            drag.set(Some((start, f)));
        }
    };
    let on_down = move |ev: leptos::ev::MouseEvent| {
        if let Some(f) = pointer_fraction(&ev).filter(|_| zoomable) {
            ev.prevent_default();
            drag.set(Some((f, f)));
        }
    };
    let on_up = {
        let reload = reload.clone();
        move |_| {
            let (Some((a, b)), Some(fr)) = (drag.get_untracked(), frame.get_untracked()) else { return };
            drag.set(None);
            if (a - b).abs() * W < 8.0 {
                return;
            }
            let (from, to) = (fr.x_at(a.min(b)).floor() as i64, fr.x_at(a.max(b)).ceil() as i64);
            zoom.set(Some((from, to)));
            reload(Some((from, to)));
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let Some(fr) = frame.get_untracked() else { return };
        let xs: Vec<f64> = data
            .with_untracked(|d| d.lines.first().map(|l| l.points.iter().map(|p| p.x() as f64).collect()))
            .unwrap_or_default();
        if xs.is_empty() {
            return;
        }
        let current = cursor.get_untracked();
        let index = current.map(|c| xs.iter().position(|x| *x >= c).unwrap_or(xs.len() - 1));
        let next = match (ev.key().as_str(), index) {
            ("ArrowRight", Some(i)) => (i + usize::from(xs[i] <= current.unwrap_or(fr.x0))).min(xs.len() - 1),
            ("ArrowLeft", Some(i)) => i.saturating_sub(1),
            ("ArrowRight" | "ArrowLeft" | "Home", None) | ("Home", _) => 0,
            ("End", _) => xs.len() - 1,
            ("Escape", _) => {
                cursor.set(None);
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        cursor.set(Some(xs[next]));
    };
    let reset = {
        let reload = reload.clone();
        move |_| {
            zoom.set(None);
            reload(None);
        }
    };
    let lines_view = move || {
        let Some(fr) = frame.get() else {
            return view! { <text x=W / 2.0 y=H / 2.0 class="chart-empty" text-anchor="middle">"No points in this range"</text> }
                .into_any();
        };
        data.with(|d| {
            let y_ticks = ticks(fr.y0, fr.y1, 4);
            let x_ticks: Vec<f64> = ticks(fr.x0, fr.x1, if axis == MetricAxis::Time { 4 } else { 6 })
                .into_iter()
                .filter(|t| !per_version || t.fract() == 0.0)
                .collect();
            let grid = y_ticks
                .iter()
                .map(|t| {
                    let y = fr.sy(*t);
                    view! {
                        <line class="grid" x1=LEFT x2=W - RIGHT y1=y y2=y/>
                        <text class="tick" x=LEFT - 6.0 y=y + 4.0 text-anchor="end">{format::compact(*t)}</text>
                    }
                })
                .collect_view();
            let x_labels = x_ticks
                .iter()
                .map(|t| {
                    view! { <text class="tick" x=fr.sx(*t) y=H - 10.0 text-anchor="middle">{axis_label(*t, axis, per_version)}</text> }
                })
                .collect_view();
            let thresholds = d
                .thresholds
                .iter()
                .map(|t| {
                    let y = fr.sy(t.value);
                    let class = if t.severity == Severity::Failing { "threshold failing" } else { "threshold warning" };
                    // Named in the legend below, where a label cannot sit on a curve.
                    view! {
                        <g class=class>
                            <title>{t.label.clone()}</title>
                            <line x1=LEFT x2=W - RIGHT y1=y y2=y/>
                        </g>
                    }
                })
                .collect_view();
            let marks = if axis == MetricAxis::Time { {
                    markers
                        .iter()
                        .filter(|m| (fr.x0..=fr.x1).contains(&(m.at_ms as f64)))
                        .map(|m| {
                            let x = fr.sx(m.at_ms as f64);
                            let class = if m.rollback { "marker rollback" } else { "marker" };
                            // Labels right of the line, or left of it near the right edge.
                            let (tx, anchor) = if x > W * 0.6 { (x - 4.0, "end") } else { (x + 4.0, "start") };
                            view! {
                                <g class=class>
                                    <line x1=x x2=x y1=TOP y2=H - BOTTOM/>
                                    <text x=tx y=H - BOTTOM - 6.0 text-anchor=anchor>{m.label.clone()}</text>
                                </g>
                            }
                        })
                        .collect_view()
                } } else { Default::default() };
            let spans = if axis == MetricAxis::Time { {
                    band
                        .iter()
                        .filter(|b| b.to_ms as f64 >= fr.x0 && b.from_ms as f64 <= fr.x1)
                        .map(|b| {
                            let (x0, x1) = (fr.sx((b.from_ms as f64).max(fr.x0)), fr.sx((b.to_ms as f64).min(fr.x1)));
                            let outcome = b.outcome.as_str();
                            view! {
                                <rect class=format!("band band-{outcome}") data-outcome=outcome x=x0 y=H - BOTTOM - 8.0
                                    width=(x1 - x0).max(1.0) height="8">
                                    <title>{outcome.replace('_', " ")}</title>
                                </rect>
                            }
                        })
                        .collect_view()
                } } else { Default::default() };
            let paths = d
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let dash = if l.compared { "6 4" } else { "none" };
                    view! {
                        <path class=format!("series c{}", i % COLOURS) d=path(&l.points, &fr) stroke-dasharray=dash/>
                    }
                })
                .collect_view();
            view! {
                <g>
                    {grid}
                    <line class="axis" x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM/>
                    {x_labels}
                    {thresholds}
                    {marks}
                    {spans}
                    {paths}
                </g>
            }
            .into_any()
        })
    };
    let cursor_view = move || {
        let (x, fr) = (cursor.get()?, frame.get()?);
        let dots = data
            .with(|d| under_cursor(d, x))
            .into_iter()
            .map(|(i, _, p)| {
                view! {
                    <circle class=format!("dot c{}", i % COLOURS) cx=fr.sx(p.x() as f64) cy=fr.sy(p.value()) r="3.5"/>
                }
            })
            .collect_view();
        Some(view! {
            <line class="guide" x1=fr.sx(x) x2=fr.sx(x) y1=TOP y2=H - BOTTOM/>
            {dots}
        })
    };
    let selection = move || {
        let (a, b) = drag.get()?;
        let (lo, hi) = (a.min(b) * W, a.max(b) * W);
        Some(view! { <rect class="selection" x=lo y=TOP width=hi - lo height=H - TOP - BOTTOM/> })
    };
    let tooltip = move || {
        let (x, fr) = (cursor.get()?, frame.get()?);
        let rows = data
            .with(|d| under_cursor(d, x))
            .into_iter()
            .map(|(i, label, p)| {
                view! {
                    <div class="tip-row">
                        <span class=format!("swatch c{}", i % COLOURS)></span>
                        {label}": "<strong class="tip-value">{format::significant(p.value())}</strong>
                        <span class="muted">{format!(" ({})", exact_x(p, axis, per_version))}</span>
                    </div>
                }
            })
            .collect_view();
        // Positioned through the CSSOM (`style:`), which the page's CSP allows, unlike style attributes.
        let left = (fr.sx(x) / W * 100.0).clamp(0.0, 100.0);
        let (l, r) = if left > 55.0 {
            (None, Some(format!("{:.1}%", 100.0 - left + 1.0)))
        } else {
            (Some(format!("{:.1}%", left + 1.0)), None)
        };
        Some(view! { <div class="chart-tip" role="status" style:left=l style:right=r>{rows}</div> })
    };
    let legend = move || {
        data.with(|d| {
            d.lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let note = if l.downsampled { format!(" — {} points, min/max per bucket", l.total) } else { format!(" — {} points", l.total) };
                    view! {
                        <li>
                            <span class=format!("swatch c{}{}", i % COLOURS, if l.compared { " dashed" } else { "" })></span>
                            {l.label.clone()}<span class="muted">{note}</span>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let threshold_keys = move || {
        data.with(|d| {
            d.thresholds
                .iter()
                .map(|t| {
                    let severity = if t.severity == Severity::Failing { "failing" } else { "warning" };
                    view! {
                        <li class=format!("threshold-key {severity}")>
                            <span class=format!("swatch rule {severity}")></span>{t.label.clone()}
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let series_count = move || data.with(|d| d.lines.len());
    view! {
        <figure class="chart" data-key=key.clone() data-series=series_count data-banded=banded.to_string()>
            <figcaption>
                <h3 id=title_id.clone()>{key.clone()}</h3>
                <span class="muted chart-hint">
                    {if zoomable { "Drag to zoom · arrow keys step through points" } else { "Arrow keys step through points" }}
                </span>
                {move || zoom.get().map(|_| view! { <button type="button" class="link reset-zoom" on:click=reset.clone()>"Reset zoom"</button> })}
                {move || busy.get().then(|| view! { <span class="muted">"Loading…"</span> })}
            </figcaption>
            <div class="chart-area">
                <svg viewBox=format!("0 0 {W} {H}") role="img" tabindex="0" aria-labelledby=title_id
                    aria-describedby=desc_id.clone() on:mousemove=on_move on:mousedown=on_down on:mouseup=on_up
                    on:mouseleave=move |_| { cursor.set(None); drag.set(None); } on:keydown=on_key
                    on:blur=move |_| cursor.set(None)>
                    {lines_view}
                    {cursor_view}
                    {selection}
                </svg>
                {tooltip}
            </div>
            <p class="visually-hidden" id=desc_id>{description}</p>
            <ul class="legend">{legend}{threshold_keys}</ul>
        </figure>
    }
}

/// A tiny trend line of values (the versions table's key metric).
#[component]
pub fn Sparkline(values: Vec<f64>, #[prop(into)] label: String) -> impl IntoView {
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = values.len().max(2) - 1;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", 2.0 + i as f64 / n as f64 * 96.0, 22.0 - (v - lo) / span * 18.0))
        .collect();
    view! {
        <svg class="sparkline" viewBox="0 0 100 24" width="100" height="24" role="img" aria-label=label>
            <polyline points=points.join(" ") fill="none"/>
        </svg>
    }
}

/// The id of a metric's chart on the version page, which links to it use as their fragment.
pub fn anchor(key: &str) -> String {
    format!("chart-{}", key.replace(char::is_whitespace, "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.913, 0.962, 4);
        assert!(t.len() >= 3 && t.iter().all(|v| (0.913..=0.962).contains(v)), "{t:?}");
        assert_eq!(ticks(5.0, 5.0, 4), vec![5.0]);
    }

    #[test]
    fn frames_fit_points_and_thresholds() {
        let point = ChartPoint;
        let data = ChartData {
            key: "k".into(),
            axis: MetricAxis::Step,
            lines: vec![crate::server_fns::ChartLine {
                label: "v1 eval".into(),
                compared: false,
                total: 2,
                downsampled: false,
                points: vec![point(0, 1.0), point(10, 2.0)],
            }],
            thresholds: vec![crate::server_fns::Threshold {
                label: "t".into(),
                value: 5.0,
                severity: Severity::Failing,
            }],
        };
        let f = Frame::of(&data).unwrap();
        assert_eq!((f.x0, f.x1), (0.0, 10.0));
        assert!(f.y0 < 1.0 && f.y1 > 5.0, "{f:?}");
        assert!((f.sx(0.0) - LEFT).abs() < 1e-9 && (f.sx(10.0) - (W - RIGHT)).abs() < 1e-9);
        assert!(f.sy(f.y0) > f.sy(f.y1), "larger values are drawn higher");
        assert_eq!(nearest(&data.lines[0].points, 7.0).unwrap().x(), 10);
        assert_eq!(path(&data.lines[0].points[..1], &f), format!("M{LEFT:.1},{:.1}", f.sy(1.0)));
    }
}
