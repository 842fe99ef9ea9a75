//! Comparing a version's metric with its baseline's: a fixed-window Mann–Whitney U test with the
//! Hodges–Lehmann shift and its confidence interval, and an anytime-valid confidence sequence
//! (mixture SPRT) for rules checked as points arrive; each ends in pass, fail, inconclusive or no
//! data against a practical tolerance.
//!
//! Both estimate the shift d = candidate − baseline, on the log scale for a relative tolerance
//! (a ratio of medians or of geometric means: a 20 % slower version is d = ln 1.2 at every
//! quantile when its latencies are scaled), else in the metric's units. The verdict reads the
//! interval against the tolerance on the worse side: *fail* when the whole interval is worse than
//! the tolerance, *pass* when none of it is, *inconclusive* otherwise.
//!
//! Assumptions. Mann–Whitney: the two windows are independent samples, and the shift interval
//! assumes the distributions differ by a location shift (on the chosen scale); its p-value and
//! interval hold for one look at a fixed window, not for a window re-tested as it grows. The
//! sequential test: independent points with finite variance; its normal mixture boundary is
//! exact for normal data with known variance and holds asymptotically with the variances
//! estimated (hence the minimum points per side), at every look at once.
//!
//! References: Mann & Whitney (1947); Hodges & Lehmann (1963), "Estimates of location based on
//! rank tests"; Lehmann (1975), *Nonparametrics*, §2.6 for the interval from the order statistics
//! of the pairwise differences; Robbins (1970) for mixture boundaries; Johari, Koomen, Pekelis &
//! Walsh (2017), "Peeking at A/B tests", for the normal mixture SPRT and its always-valid p-value;
//! Lindon et al. (2022), arXiv 2205.14762, on sequential testing of canaries.

use app::domain::{Comparison, ComparisonEvidence, ComparisonTest, Direction, Outcome, Tolerance};
use statrs::distribution::{ContinuousCDF, Normal};

/// A comparison rule's test, run on the rule's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test(pub Comparison);

impl std::ops::Deref for Test {
    type Target = Comparison;

    fn deref(&self) -> &Comparison {
        &self.0
    }
}

/// A sample's count, mean and sum of squared deviations, kept as points arrive (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: usize,
    mean: f64,
    m2: f64,
}

impl Moments {
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn of(values: &[f64]) -> Self {
        let mut m = Moments::default();
        values.iter().for_each(|v| m.push(*v));
        m
    }

    /// The variance of the mean (the sample variance over n).
    fn mean_variance(&self) -> f64 {
        if self.n < 2 { 0.0 } else { self.m2 / (self.n - 1) as f64 / self.n as f64 }
    }
}

impl Test {
    /// The shift beyond which the candidate is worse, on the scale the tests work on (log for a
    /// relative tolerance), as a bound on the worse-oriented shift (`sign` × d).
    fn bound(&self) -> f64 {
        match (self.tolerance, self.direction) {
            (Tolerance::Relative(r), Direction::HigherIsWorse) => (1.0 + r).ln(),
            (Tolerance::Relative(r), Direction::LowerIsWorse) => -(1.0 - r.min(0.999_999)).ln(),
            (Tolerance::Absolute(a), _) => a,
        }
    }

    /// +1 when a higher value is worse, −1 when a lower one is.
    fn sign(&self) -> f64 {
        match self.direction {
            Direction::HigherIsWorse => 1.0,
            Direction::LowerIsWorse => -1.0,
        }
    }

    fn relative(&self) -> bool {
        matches!(self.tolerance, Tolerance::Relative(_))
    }

    /// Compares `candidate` with `baseline`.
    pub fn compare(&self, baseline: &[f64], candidate: &[f64]) -> ComparisonEvidence {
        let mut evidence = self.no_data(baseline.len(), candidate.len(), None);
        if baseline.len() < self.min_points.max(2) || candidate.len() < self.min_points.max(2) {
            evidence.note = Some(format!("fewer than {} points on a side", self.min_points.max(2)));
            return evidence;
        }
        let scale = |values: &[f64]| -> Option<Vec<f64>> {
            if self.relative() {
                values.iter().map(|v| (*v > 0.0).then(|| v.ln())).collect()
            } else {
                Some(values.to_vec())
            }
        };
        let (Some(x), Some(y)) = (scale(baseline), scale(candidate)) else {
            evidence.note = Some("a relative tolerance needs positive values".into());
            return evidence;
        };
        match self.test {
            ComparisonTest::MannWhitney => self.mann_whitney(x, y),
            ComparisonTest::Sequential => self.sequential(Moments::of(&x), Moments::of(&y)),
        }
    }

    /// The sequential test from each side's moments (on the test's scale: logs for a relative
    /// tolerance), as kept while points arrive.
    pub fn sequential(&self, x: Moments, y: Moments) -> ComparisonEvidence {
        if x.n < self.min_points.max(2) || y.n < self.min_points.max(2) {
            return self.no_data(x.n, y.n, Some(format!("fewer than {} points on a side", self.min_points.max(2))));
        }
        let d = y.mean - x.mean;
        let v = x.mean_variance() + y.mean_variance();
        let alpha = 1.0 - self.confidence;
        // The mixing variance: shifts the size of the tolerance (or, with none, of one point's
        // spread over the minimum sample) are those the test is most sensitive to.
        let bound = self.bound();
        let tau2 = if bound > 0.0 {
            bound * bound
        } else {
            ((x.mean_variance() * x.n as f64 + y.mean_variance() * y.n as f64) / 2.0 / self.min_points.max(2) as f64)
                .max(f64::MIN_POSITIVE)
        };
        let (half, log_lr) = if v > 0.0 {
            let half = (v * (v + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + ((v + tau2) / v).ln())).sqrt();
            let log_lr = |theta: f64| 0.5 * (v / (v + tau2)).ln() + tau2 * (d - theta).powi(2) / (2.0 * v * (v + tau2));
            (half, Some((log_lr(self.sign() * bound), log_lr(0.0))))
        } else {
            (0.0, None)
        };
        let mut evidence = self.verdict((d - half, d, d + half), x.n, y.n);
        evidence.statistic = log_lr.map(|(at_tolerance, _)| at_tolerance);
        evidence.p_value =
            Some(log_lr.map_or(if d == 0.0 { 1.0 } else { 0.0 }, |(_, at_zero)| (-at_zero).exp().min(1.0)));
        evidence
    }

    /// Mann–Whitney U with the Hodges–Lehmann shift and its distribution-free interval.
    fn mann_whitney(&self, mut x: Vec<f64>, mut y: Vec<f64>) -> ComparisonEvidence {
        x.sort_unstable_by(f64::total_cmp);
        y.sort_unstable_by(f64::total_cmp);
        let (m, n) = (x.len() as f64, y.len() as f64);
        let (u, ties) = u_statistic(&x, &y);
        let total = m + n;
        let variance = m * n / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
        let standard = Normal::standard();
        let p_value = if variance > 0.0 { 2.0 * standard.sf(((u - m * n / 2.0) / variance.sqrt()).abs()) } else { 1.0 };
        // The interval's ends are order statistics of the m·n pairwise differences (Lehmann):
        // the C-th smallest and largest, C from the normal approximation of U's distribution.
        let pairs = (x.len() * y.len()) as u64;
        let z = standard.inverse_cdf(1.0 - (1.0 - self.confidence) / 2.0);
        let c = ((m * n / 2.0 - z * (m * n * (total + 1.0) / 12.0).sqrt()).floor() as u64).clamp(1, pairs.div_ceil(2));
        let differences = Differences::new(&x, &y);
        let median = if pairs % 2 == 1 {
            differences.kth(pairs.div_ceil(2))
        } else {
            let (lower, upper) = differences.kth_pair(pairs / 2);
            (lower + upper) / 2.0
        };
        let interval = (differences.kth(c), median, differences.kth(pairs - c + 1));
        let mut evidence = self.verdict(interval, x.len(), y.len());
        evidence.statistic = Some(u);
        evidence.p_value = Some(p_value.min(1.0));
        evidence
    }

    /// The outcome of the interval (low, estimate, high) on d against the tolerance, reported on
    /// the metric's scale.
    fn verdict(&self, (low, estimate, high): (f64, f64, f64), baseline: usize, candidate: usize) -> ComparisonEvidence {
        let (sign, bound) = (self.sign(), self.bound());
        let (worse_low, worse_high) = if sign > 0.0 { (low, high) } else { (-high, -low) };
        let outcome = if worse_low > bound {
            Outcome::Fail
        } else if worse_high <= bound {
            Outcome::Pass
        } else {
            Outcome::Inconclusive
        };
        let natural = |v: f64| if self.relative() { v.exp() - 1.0 } else { v };
        ComparisonEvidence {
            outcome,
            shift: Some(natural(estimate)),
            low: Some(natural(low)),
            high: Some(natural(high)),
            ..self.no_data(baseline, candidate, None)
        }
    }

    fn no_data(&self, baseline: usize, candidate: usize, note: Option<String>) -> ComparisonEvidence {
        ComparisonEvidence {
            outcome: Outcome::NoData,
            test: self.test,
            baseline_points: baseline as i64,
            candidate_points: candidate as i64,
            shift: None,
            low: None,
            high: None,
            relative: self.relative(),
            statistic: None,
            p_value: None,
            note,
        }
    }
}

/// U = the number of pairs with the candidate's point above the baseline's (ties count a half),
/// and Σ (t³ − t) over groups of t tied values in both samples together, for U's variance.
fn u_statistic(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (mut below, mut equal_end, mut u) = (0usize, 0usize, 0.0);
    for &v in y {
        while below < x.len() && x[below] < v {
            below += 1;
        }
        equal_end = equal_end.max(below);
        while equal_end < x.len() && x[equal_end] == v {
            equal_end += 1;
        }
        u += below as f64 + (equal_end - below) as f64 / 2.0;
    }
    let (mut i, mut j, mut ties) = (0, 0, 0.0);
    while i < x.len() || j < y.len() {
        let v = match (x.get(i), y.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        let mut t = 0.0;
        while x.get(i) == Some(&v) {
            i += 1;
            t += 1.0;
        }
        while y.get(j) == Some(&v) {
            j += 1;
            t += 1.0;
        }
        ties += t * t * t - t;
    }
    (u, ties)
}

/// Where the k-th to the `last`-th smallest differences lie: (low, high], with how many
/// differences are at most each end.
struct Bracket {
    low: f64,
    high: f64,
    below: u64,
    at_high: u64,
    k: u64,
    last: u64,
}

impl Bracket {
    /// Makes `d`, with `count` differences at most it, an end when that narrows the bracket
    /// around the ranks sought; whether it did (or it was outside already).
    fn take(&mut self, d: f64, count: u64) -> bool {
        if count >= self.last {
            if d < self.high {
                (self.high, self.at_high) = (d, count);
            }
            true
        } else if count < self.k {
            if d > self.low {
                (self.low, self.below) = (d, count);
            }
            true
        } else {
            false
        }
    }
}

/// How many pairwise differences y_j − x_i are at most `d` (both sorted): one pass, since the
/// x_i ≥ y_j − d start further right as y_j grows.
fn differences_at_most(x: &[f64], y: &[f64], d: f64) -> u64 {
    let (mut i, mut count) = (0, 0u64);
    for &v in y {
        while i < x.len() && x[i] < v - d {
            i += 1;
        }
        count += (x.len() - i) as u64;
    }
    count
}

/// The pairwise differences y_j − x_i of two sorted samples, for picking order statistics
/// without listing all m·n of them.
struct Differences<'a> {
    x: &'a [f64],
    y: &'a [f64],
    /// The differences of every s-th point of each side, sorted: a stratified sample that puts a
    /// first bracket around any order statistic.
    sample: Vec<f64>,
    /// Every value counted so far with its count: the order statistics a comparison picks lie
    /// close together, so one's counts bracket the next.
    counted: std::cell::RefCell<Vec<(f64, u64)>>,
}

impl<'a> Differences<'a> {
    fn new(x: &'a [f64], y: &'a [f64]) -> Self {
        // About 64 points a side: sorting the sample is the fixed cost of every comparison.
        let (sx, sy) = ((x.len() / 64).max(1), (y.len() / 64).max(1));
        let mut sample: Vec<f64> =
            y.iter().step_by(sy).flat_map(|b| x.iter().step_by(sx).map(move |a| b - a)).collect();
        sample.sort_unstable_by(f64::total_cmp);
        Differences { x, y, sample, counted: Default::default() }
    }

    /// The k-th smallest (1-based): a bracket (low, high] holding it — first from the sample's
    /// quantiles four standard errors either side of k/(m·n), then narrowed each round by probing
    /// a little below and above where the count of differences (linear within the bracket) puts
    /// it — until it holds at most m + n differences; those are listed and the k-th picked exactly.
    /// The k-th and the (k+1)-th smallest: see [`Differences::kth`].
    fn kth_pair(&self, k: u64) -> (f64, f64) {
        let (x, y) = (self.x, self.y);
        let (budget, pairs) = ((x.len() + y.len()) as u64, (x.len() * y.len()) as u64);
        // Every difference lies inside, with room to spare for rounding.
        let (smallest, largest) = (y[0] - x[x.len() - 1], y[y.len() - 1] - x[0]);
        let margin = 1.0 + smallest.abs().max(largest.abs());
        let mut b = Bracket {
            low: smallest - margin,
            high: largest + margin,
            below: 0,
            at_high: pairs,
            k,
            last: (k + 1).min(pairs),
        };
        for &(d, count) in self.counted.borrow().iter() {
            b.take(d, count);
        }
        // Counts `d` (inside the bracket) and narrows the bracket with it; the k-th and the next
        // when `d` falls between them, each then the extreme of its side.
        let probe = |b: &mut Bracket, d: f64| -> Option<(f64, f64)> {
            if !(b.low < d && d < b.high) {
                return None;
            }
            let count = differences_at_most(x, y, d);
            self.counted.borrow_mut().push((d, count));
            (!b.take(d, count)).then(|| (self.extreme(b.low, d, false), self.extreme(d, b.high, true)))
        };
        let n = self.sample.len() as f64;
        let q = k as f64 / pairs as f64;
        let error = 4.0 * (q * (1.0 - q) / n).sqrt() + 1.0 / n;
        for at in [q - error, q + error] {
            if let Some(pair) = probe(&mut b, self.sample[((at * n) as isize).clamp(0, n as isize - 1) as usize]) {
                return pair;
            }
        }
        while b.at_high - b.below > budget {
            let (width, per_unit) = (b.high - b.low, (b.at_high - b.below) as f64 / (b.high - b.low));
            let (guess, spread) = (b.low + (k - b.below) as f64 / per_unit, budget as f64 / 4.0 / per_unit);
            for d in [guess - spread, guess + spread] {
                if let Some(pair) = probe(&mut b, d) {
                    return pair;
                }
            }
            if b.high - b.low == width {
                let mid = b.low + width / 2.0;
                if !(b.low < mid && mid < b.high) {
                    break;
                }
                if let Some(pair) = probe(&mut b, mid) {
                    return pair;
                }
            }
        }
        let Bracket { low, high, below, at_high, .. } = b;
        // Every difference in (low, high]: for each y_j, the x_i in [y_j − high, y_j − low).
        let mut between = Vec::with_capacity((at_high - below) as usize);
        let (mut from, mut to) = (0, 0);
        for &v in y {
            while from < x.len() && x[from] < v - high {
                from += 1;
            }
            to = to.max(from);
            while to < x.len() && x[to] < v - low {
                to += 1;
            }
            between.extend(x[from..to].iter().map(|a| v - a));
        }
        if between.is_empty() {
            return (high, high);
        }
        // The ranks within them (kept inside should rounding have moved a difference across an end).
        let rank = ((k - below - 1) as usize).min(between.len() - 1);
        let (_, kth, above) = between.select_nth_unstable_by(rank, f64::total_cmp);
        let kth = *kth;
        (kth, above.iter().copied().min_by(f64::total_cmp).unwrap_or(kth))
    }

    /// The k-th smallest (1-based): see [`Differences::kth_pair`].
    fn kth(&self, k: u64) -> f64 {
        self.kth_pair(k).0
    }

    /// The largest (or, with `smallest`, the smallest) difference in (low, high].
    fn extreme(&self, low: f64, high: f64, smallest: bool) -> f64 {
        let (mut from, mut to, mut best) = (0, 0, None::<f64>);
        for &v in self.y {
            while from < self.x.len() && self.x[from] < v - high {
                from += 1;
            }
            to = to.max(from);
            while to < self.x.len() && self.x[to] < v - low {
                to += 1;
            }
            // Within a row the differences fall as x grows: its smallest is the last, largest the first.
            let pick = if from < to { Some(v - if smallest { self.x[to - 1] } else { self.x[from] }) } else { None };
            best = match (best, pick) {
                (Some(b), Some(p)) => Some(if smallest { b.min(p) } else { b.max(p) }),
                (b, p) => b.or(p),
            };
        }
        best.unwrap_or(high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Binomial, Distribution, LogNormal};

    fn rule(test: ComparisonTest, direction: Direction, tolerance: Tolerance) -> Test {
        Test(Comparison { direction, tolerance, test, min_points: 30, confidence: 0.95 })
    }

    #[test]
    fn hodges_lehmann_is_the_median_of_pairwise_differences_and_its_interval_their_order_statistics() {
        let x: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.7 % 9.0).collect();
        let y: Vec<f64> = (0..35).map(|i| f64::from(i) * 1.3 % 11.0 + 2.0).collect();
        let mut differences: Vec<f64> = y.iter().flat_map(|b| x.iter().map(move |a| b - a)).collect();
        differences.sort_by(f64::total_cmp);
        let (mut xs, mut ys) = (x.clone(), y.clone());
        xs.sort_by(f64::total_cmp);
        ys.sort_by(f64::total_cmp);
        let picker = Differences::new(&xs, &ys);
        for k in [1, 2, 17, 700, 701, 1399, 1400] {
            assert_eq!(picker.kth(k), differences[k as usize - 1], "k = {k}");
        }
        let evidence =
            rule(ComparisonTest::MannWhitney, Direction::HigherIsWorse, Tolerance::Absolute(0.5)).compare(&x, &y);
        let median = (differences[699] + differences[700]) / 2.0;
        assert!((evidence.shift.unwrap() - median).abs() < 1e-9, "{evidence:?}");
        assert!(evidence.low.unwrap() < median && median < evidence.high.unwrap());
        // U counts the pairs where the candidate is above (ties a half).
        let above: f64 = y
            .iter()
            .flat_map(|b| {
                x.iter().map(move |a| {
                    if b > a {
                        1.0
                    } else if b == a {
                        0.5
                    } else {
                        0.0
                    }
                })
            })
            .sum();
        assert_eq!(evidence.statistic, Some(above));
    }

    #[test]
    fn every_order_statistic_of_the_differences_is_picked_exactly_with_ties_and_uneven_sides() {
        let mut rng = StdRng::seed_from_u64(9);
        let lognormal: LogNormal<f64> = LogNormal::new(0.0, 1.0).unwrap();
        for (m, n, tied) in [(300, 200, false), (257, 311, true), (1, 40, true), (500, 3, false)] {
            let draw = |rng: &mut StdRng, len: usize| -> Vec<f64> {
                let mut v: Vec<f64> = (0..len)
                    .map(|_| if tied { (lognormal.sample(rng) * 4.0).round() } else { lognormal.sample(rng) })
                    .collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let (x, y) = (draw(&mut rng, m), draw(&mut rng, n));
            let mut all: Vec<f64> = y.iter().flat_map(|b| x.iter().map(move |a| b - a)).collect();
            all.sort_by(f64::total_cmp);
            let picker = Differences::new(&x, &y);
            let pairs = (m * n) as u64;
            for k in [1, 2, pairs / 3, pairs / 2, pairs / 2 + 1, pairs - 1, pairs].into_iter().filter(|k| *k >= 1) {
                assert_eq!(picker.kth(k), all[k as usize - 1], "m {m}, n {n}, k {k}");
            }
        }
    }

    #[test]
    fn the_outcome_reads_the_interval_against_the_tolerance_on_the_worse_side() {
        let base: Vec<f64> = (0..200).map(|i| 100.0 + f64::from(i % 20)).collect();
        let shifted = |factor: f64| base.iter().map(|v| v * factor).collect::<Vec<_>>();
        for test in [ComparisonTest::MannWhitney, ComparisonTest::Sequential] {
            let latency = rule(test, Direction::HigherIsWorse, Tolerance::Relative(0.10));
            assert_eq!(latency.compare(&base, &shifted(1.30)).outcome, Outcome::Fail, "{test:?}");
            assert_eq!(latency.compare(&base, &shifted(1.0)).outcome, Outcome::Pass, "{test:?}");
            assert_eq!(latency.compare(&base, &shifted(0.7)).outcome, Outcome::Pass, "faster is never worse: {test:?}");
            let e = latency.compare(&base, &shifted(1.30));
            assert!(e.relative && (e.shift.unwrap() - 0.30).abs() < 0.01, "{e:?}");
            let accuracy = rule(test, Direction::LowerIsWorse, Tolerance::Absolute(5.0));
            assert_eq!(accuracy.compare(&base, &shifted(0.8)).outcome, Outcome::Fail, "{test:?}");
            assert_eq!(accuracy.compare(&base, &shifted(1.2)).outcome, Outcome::Pass, "{test:?}");
            // Too few points, or values a relative tolerance cannot take.
            assert_eq!(latency.compare(&base[..10], &base).outcome, Outcome::NoData);
            let e = latency.compare(&base, &vec![0.0; 200]);
            assert_eq!(e.outcome, Outcome::NoData);
            assert_eq!(e.note.as_deref(), Some("a relative tolerance needs positive values"));
        }
        // A small sample around the tolerance: the data cannot tell.
        let noisy: Vec<f64> = (0..40).map(|i| 100.0 + f64::from((i * 37) % 50)).collect();
        let e = rule(ComparisonTest::Sequential, Direction::HigherIsWorse, Tolerance::Relative(0.10))
            .compare(&noisy, &noisy.iter().map(|v| v * 1.10).collect::<Vec<_>>());
        assert_eq!(e.outcome, Outcome::Inconclusive, "{e:?}");
    }

    impl Moments {
        /// Adds `count` points of value `v` at once (Chan et al.'s merge of two samples' moments).
        fn push_many(&mut self, v: f64, count: u64) {
            if count == 0 {
                return;
            }
            let (na, nb) = (self.n as f64, count as f64);
            let delta = v - self.mean;
            self.n += count as usize;
            self.mean += delta * nb / (na + nb);
            self.m2 += delta * delta * na * nb / (na + nb);
        }
    }

    /// Draws one minute of one side's points into its moments (on the test's scale).
    type Draw<'a> = &'a dyn Fn(&mut StdRng, &mut Moments, bool);

    /// 1,000 seeded hours, each side drawing one minute at a time and the rule checked every
    /// minute: how many hours failed through the sequential test and through a fixed-window test
    /// naively re-run at every check, and the points per side the sequential test had when it
    /// failed (sorted).
    fn simulate(rule: &Test, seed: u64, draw: Draw) -> (usize, usize, Vec<usize>) {
        let (mut sequential, mut repeated, mut points) = (0, 0, Vec::new());
        for run in 0..1_000 {
            let mut rng = StdRng::seed_from_u64(seed * 1_000_000 + run);
            let (mut x, mut y) = (Moments::default(), Moments::default());
            let (mut seq_failed, mut naive_failed) = (false, false);
            for _ in 0..60 {
                draw(&mut rng, &mut x, false);
                draw(&mut rng, &mut y, true);
                if !seq_failed && rule.sequential(x, y).outcome == Outcome::Fail {
                    seq_failed = true;
                    points.push(y.n);
                }
                naive_failed |= naive(rule, x, y) == Outcome::Fail;
            }
            sequential += seq_failed as usize;
            repeated += naive_failed as usize;
        }
        points.sort();
        (sequential, repeated, points)
    }

    /// A fixed-window test on the same moments, naively re-run at every check: the normal
    /// interval d ± z·√V, valid once, not sixty times.
    fn naive(rule: &Test, x: Moments, y: Moments) -> Outcome {
        let z = Normal::standard().inverse_cdf(1.0 - (1.0 - rule.confidence) / 2.0);
        let (d, half) = (y.mean - x.mean, z * (x.mean_variance() + y.mean_variance()).sqrt());
        if x.n < rule.min_points { Outcome::NoData } else { rule.verdict((d - half, d, d + half), x.n, y.n).outcome }
    }

    #[test]
    fn the_sequential_test_keeps_its_false_alarms_under_alpha_when_checked_every_minute_and_detects_real_shifts() {
        // Latency, log-normal (heavy-tailed), 50 points a minute a side, checked every minute.
        let latency = rule(ComparisonTest::Sequential, Direction::HigherIsWorse, Tolerance::Relative(0.0));
        let lognormal = LogNormal::new(5.0, 0.6).unwrap();
        let minute = |factor: f64| {
            move |rng: &mut StdRng, side: &mut Moments, candidate: bool| {
                for _ in 0..50 {
                    side.push((lognormal.sample(rng) * if candidate { factor } else { 1.0 }).ln());
                }
            }
        };
        let (sequential, repeated, _) = simulate(&latency, 1, &minute(1.0));
        assert!(sequential <= 50, "sequential false alarms: {sequential} of 1,000 (α = 5 %)");
        assert!(repeated > 2 * sequential.max(25), "re-running a fixed-window test each minute fires more: {repeated}");
        // A fixed threshold at the baseline's own p99, on each minute's p99: fires on noise.
        let threshold = (5.0 + 0.6 * Normal::standard().inverse_cdf(0.99)).exp();
        let mut threshold_alarms = 0;
        for run in 0..1_000 {
            let mut rng = StdRng::seed_from_u64(10_000 + run);
            let fired = (0..60).any(|_| {
                let mut minute: Vec<f64> = (0..100).map(|_| lognormal.sample(&mut rng)).collect();
                minute.sort_by(f64::total_cmp);
                minute[98] > threshold
            });
            threshold_alarms += fired as usize;
        }
        assert!(threshold_alarms > 500, "a threshold at p99 checked 60 times: {threshold_alarms}");
        // 20 % slower at every quantile (p99 included), 10 % tolerated.
        let tolerant = Test(Comparison { tolerance: Tolerance::Relative(0.10), ..latency.0 });
        let (caught, _, points) = simulate(&tolerant, 2, &minute(1.2));
        assert!(caught >= 950, "caught {caught} of 1,000");
        assert!(points[949] <= 2_100, "95 % caught within {} points a side (documented: 2,100)", points[949]);

        // Accuracy as 0/1 correctness, 500 points a minute a side: 90 % against 88 %.
        let accuracy = rule(ComparisonTest::Sequential, Direction::LowerIsWorse, Tolerance::Absolute(0.0));
        let correct = |p_candidate: f64| {
            move |rng: &mut StdRng, side: &mut Moments, candidate: bool| {
                let p = if candidate { p_candidate } else { 0.90 };
                let right = Binomial::new(500, p).unwrap().sample(rng);
                side.push_many(1.0, right);
                side.push_many(0.0, 500 - right);
            }
        };
        let (false_alarms, repeated, _) = simulate(&accuracy, 3, &correct(0.90));
        assert!(false_alarms <= 50, "{false_alarms} false alarms of 1,000 on 0/1 data");
        assert!(repeated > 2 * false_alarms.max(25), "the naive re-run: {repeated}");
        let (caught, _, points) = simulate(&accuracy, 4, &correct(0.88));
        assert!(caught >= 950, "caught {caught} of 1,000");
        assert!(points[949] <= 11_500, "95 % caught within {} points a side (documented: 11,500)", points[949]);
    }
}
