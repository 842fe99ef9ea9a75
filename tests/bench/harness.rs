//! What the benchmark clients share: running a scenario from several clients and printing its
//! throughput and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Latencies of one scenario, in microseconds.
pub struct Sample {
    pub name: String,
    pub clients: usize,
    pub elapsed: Duration,
    pub micros: Vec<u64>,
    pub errors: usize,
}

impl Sample {
    pub fn percentile(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[i] as f64 / 1000.0
    }

    pub fn print(&mut self) {
        self.micros.sort_unstable();
        println!(
            "{:<34} {:>3} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7}",
            self.name,
            self.clients,
            self.micros.len() as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0),
            self.errors
        );
    }
}

/// Runs `clients` loops of `request(i)` and records latencies: `count` requests in all, for at
/// least `seconds` (so a fast server is timed over a window as long as a slow one's), or without
/// a count for `seconds`.
pub async fn run<F, Fut>(name: &str, clients: usize, seconds: u64, count: Option<usize>, request: F) -> Sample
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let (mut micros, mut errors) = (Vec::new(), 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if Instant::now() >= deadline && count.is_none_or(|n| i >= n) {
                        break;
                    }
                    let t = Instant::now();
                    let ok = request(i).await;
                    micros.push(t.elapsed().as_micros() as u64);
                    errors += usize::from(!ok);
                }
                (micros, errors)
            })
        })
        .collect();
    let mut sample = Sample { name: name.into(), clients, elapsed: Duration::ZERO, micros: Vec::new(), errors: 0 };
    for t in tasks {
        let (m, e) = t.await.expect("client task");
        sample.micros.extend(m);
        sample.errors += e;
    }
    sample.elapsed = started.elapsed();
    sample
}

/// Prints scenarios as a table: throughput, p50, p99 and max latency, errors.
pub fn print_table(samples: &mut [Sample]) {
    println!(
        "{:<34} {:>3} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "scenario", "c", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for s in samples {
        s.print();
    }
}
