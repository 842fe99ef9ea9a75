//! How a series is stored and reduced: points packed into fixed-size chunks with their ranges and
//! extremes, and min/max-per-bucket downsampling that reads whole chunks from those extremes alone.

use app::domain::{MetricAxis, MetricPoint};

/// Points per chunk; every chunk of a series but the last is full.
pub const CHUNK_POINTS: usize = 512;
/// Chunks per block (the second level of stats, for long time windows).
pub const BLOCK_CHUNKS: i64 = 64;
const POINT_BYTES: usize = 24;

/// Packs points as little-endian (step i64, time ms i64, value f64).
pub fn pack(points: &[MetricPoint]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(points.len() * POINT_BYTES);
    for p in points {
        bytes.extend_from_slice(&p.step.to_le_bytes());
        bytes.extend_from_slice(&p.timestamp.to_le_bytes());
        bytes.extend_from_slice(&p.value.to_le_bytes());
    }
    bytes
}

/// The points of a packed chunk (a damaged tail that is not a whole point is ignored).
pub fn unpack(bytes: &[u8]) -> Vec<MetricPoint> {
    bytes
        .chunks_exact(POINT_BYTES)
        .map(|b| {
            let word = |i: usize| <[u8; 8]>::try_from(&b[i..i + 8]).unwrap_or_default();
            MetricPoint {
                step: i64::from_le_bytes(word(0)),
                timestamp: i64::from_le_bytes(word(8)),
                value: f64::from_le_bytes(word(16)),
            }
        })
        .collect()
}

/// Where a point sits on an axis.
pub fn position(p: &MetricPoint, axis: MetricAxis) -> i64 {
    match axis {
        MetricAxis::Step => p.step,
        MetricAxis::Time => p.timestamp,
    }
}

/// What a chunk row records besides its points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkStats {
    pub count: i64,
    pub step_min: i64,
    pub step_max: i64,
    pub at_min: i64,
    pub at_max: i64,
    /// The point with the smallest value (the first of equals).
    pub low: MetricPoint,
    /// The point with the largest value (the first of equals).
    pub high: MetricPoint,
    /// The sum of the values.
    pub sum: f64,
}

impl ChunkStats {
    /// The stats of a non-empty run of points.
    pub fn of(points: &[MetricPoint]) -> Option<Self> {
        let first = *points.first()?;
        let mut s = ChunkStats {
            count: 0,
            step_min: first.step,
            step_max: first.step,
            at_min: first.timestamp,
            at_max: first.timestamp,
            low: first,
            high: first,
            sum: 0.0,
        };
        for p in points {
            s.count += 1;
            s.sum += p.value;
            s.step_min = s.step_min.min(p.step);
            s.step_max = s.step_max.max(p.step);
            s.at_min = s.at_min.min(p.timestamp);
            s.at_max = s.at_max.max(p.timestamp);
            if p.value < s.low.value {
                s.low = *p;
            }
            if p.value > s.high.value {
                s.high = *p;
            }
        }
        Some(s)
    }

    /// The chunk's range on an axis.
    pub fn range(&self, axis: MetricAxis) -> (i64, i64) {
        match axis {
            MetricAxis::Step => (self.step_min, self.step_max),
            MetricAxis::Time => (self.at_min, self.at_max),
        }
    }
}

/// A piece of a series in arrival order: a whole chunk known by its stats, or one decoded point.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Chunk(ChunkStats),
    Point(MetricPoint),
}

/// Consecutive points reduced to their count and extremes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub count: i64,
    pub low: MetricPoint,
    pub high: MetricPoint,
}

impl Bucket {
    fn add(&mut self, unit: &Unit) {
        let (count, low, high) = match unit {
            Unit::Chunk(s) => (s.count, s.low, s.high),
            Unit::Point(p) => (1, *p, *p),
        };
        if self.count == 0 || low.value < self.low.value {
            self.low = low;
        }
        if self.count == 0 || high.value > self.high.value {
            self.high = high;
        }
        self.count += count;
    }
}

/// The bucket size that brings `total` points down to at most `max_points` (two per bucket).
pub fn bucket_size(total: i64, max_points: usize) -> i64 {
    let buckets = (max_points / 2).max(1) as i64;
    ((total + buckets - 1) / buckets).max(1)
}

/// Groups consecutive units into buckets of at least `size` points (the last may be smaller).
/// With `size` from [`bucket_size`] there are at most `max_points / 2` buckets.
pub fn buckets(units: impl IntoIterator<Item = Unit>, size: i64) -> Vec<Bucket> {
    let empty = Bucket {
        count: 0,
        low: MetricPoint { step: 0, timestamp: 0, value: 0.0 },
        high: MetricPoint { step: 0, timestamp: 0, value: 0.0 },
    };
    let mut out = Vec::new();
    let mut current = empty;
    for unit in units {
        current.add(&unit);
        if current.count >= size {
            out.push(current);
            current = empty;
        }
    }
    if current.count > 0 {
        out.push(current);
    }
    out
}

/// Each bucket's minimum and maximum, in axis order within the bucket (one point when they coincide).
pub fn bucket_points(buckets: &[Bucket], axis: MetricAxis) -> Vec<MetricPoint> {
    let mut points = Vec::with_capacity(buckets.len() * 2);
    for b in buckets {
        if b.low == b.high {
            points.push(b.low);
        } else if position(&b.low, axis) <= position(&b.high, axis) {
            points.extend([b.low, b.high]);
        } else {
            points.extend([b.high, b.low]);
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> Vec<MetricPoint> {
        // A wave with sharp one-point spikes that plain striding would skip.
        (0..n)
            .map(|i| {
                let spike = if i % 997 == 13 {
                    50.0
                } else if i % 1009 == 7 {
                    -50.0
                } else {
                    0.0
                };
                MetricPoint { step: i as i64, timestamp: 1_000 + i as i64, value: (i as f64 / 40.0).sin() + spike }
            })
            .collect()
    }

    #[test]
    fn packing_round_trips() {
        let points = series(700);
        assert_eq!(unpack(&pack(&points)), points);
        assert_eq!(pack(&points).len(), 700 * POINT_BYTES);
    }

    #[test]
    fn every_bucket_keeps_its_minimum_and_maximum() {
        let points = series(100_000);
        for max_points in [2, 10, 1_000, 4_096] {
            let size = bucket_size(points.len() as i64, max_points);
            // Whole chunks where a bucket spans more than a chunk, single points elsewhere, as the store does.
            let units: Vec<Unit> = points
                .chunks(CHUNK_POINTS)
                .flat_map(|c| {
                    if c.len() as i64 <= size {
                        vec![Unit::Chunk(ChunkStats::of(c).unwrap())]
                    } else {
                        c.iter().copied().map(Unit::Point).collect()
                    }
                })
                .collect();
            let buckets = buckets(units, size);
            assert!(buckets.len() <= max_points / 2, "{max_points}: {} buckets", buckets.len());
            let mut start = 0usize;
            for b in &buckets {
                let slice = &points[start..start + b.count as usize];
                let min = slice.iter().map(|p| p.value).fold(f64::INFINITY, f64::min);
                let max = slice.iter().map(|p| p.value).fold(f64::NEG_INFINITY, f64::max);
                assert_eq!((b.low.value, b.high.value), (min, max), "bucket at {start} of {max_points}");
                assert!(slice.contains(&b.low) && slice.contains(&b.high));
                start += b.count as usize;
            }
            assert_eq!(start, points.len(), "buckets cover every point once");
            let reduced = bucket_points(&buckets, MetricAxis::Step);
            assert!(reduced.len() <= max_points);
            assert!(reduced.iter().any(|p| p.value > 49.0) && reduced.iter().any(|p| p.value < -49.0));
        }
    }

    #[test]
    fn chunk_stats_record_ranges_and_extremes() {
        let points = [
            MetricPoint { step: 5, timestamp: 50, value: 1.0 },
            MetricPoint { step: 3, timestamp: 70, value: -2.0 },
            MetricPoint { step: 9, timestamp: 60, value: 4.0 },
        ];
        let s = ChunkStats::of(&points).unwrap();
        assert_eq!((s.count, s.step_min, s.step_max, s.at_min, s.at_max), (3, 3, 9, 50, 70));
        assert_eq!((s.low.step, s.high.step), (3, 9));
        assert_eq!(s.sum, 3.0);
        assert_eq!(s.range(MetricAxis::Time), (50, 70));
        assert!(ChunkStats::of(&[]).is_none());
    }
}
