//! A latency histogram that records in constant time and never allocates
//! after it is built: log-linear buckets (64 per power of two, so a value is
//! known to within 1.6%), in the spirit of HdrHistogram.

/// Values below this are counted exactly, one bucket each.
const EXACT: u64 = 128;
/// Buckets per power of two above [`EXACT`].
const PER_OCTAVE: u64 = 64;
const BUCKETS: usize = 128 + 57 * 64;

/// Counts of nanosecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

/// The figures a report quotes, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value, exactly.
    pub max: u64,
}

impl Histogram {
    /// Counts one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Counts `n` occurrences of one value.
    #[inline]
    pub fn record_n(&mut self, value: u64, n: u64) {
        self.counts[bucket(value)] += n;
        self.total += n;
        self.max = self.max.max(value);
    }

    /// Values recorded so far.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest bucket bound at or above a fraction `q` of the values
    /// (0 when nothing was recorded); never more than the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(index).min(self.max);
            }
        }
        self.max
    }

    /// p50, p90, p99, p99.9 and max.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.total,
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
        }
    }
}

fn bucket(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    // `bits` is at least 8 here; keep the top seven bits of the value.
    let bits = u64::from(64 - value.leading_zeros());
    let shift = bits - 7;
    let top = value >> shift;
    (EXACT + (shift - 1) * PER_OCTAVE + (top - PER_OCTAVE)) as usize
}

/// The largest value that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let shift = (index - EXACT) / PER_OCTAVE + 1;
    let top = (index - EXACT) % PER_OCTAVE + PER_OCTAVE;
    // The last bucket's bound is 2^64, which wraps to 0: one less is MAX.
    ((top + 1) << shift).wrapping_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for value in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let index = bucket(value);
            assert!(index < BUCKETS);
            assert!(index >= last, "{value}");
            assert!(upper_bound(index) >= value, "{value}");
            if index > 0 {
                assert!(upper_bound(index - 1) < value, "{value}");
            }
            last = index;
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut histogram = Histogram::default();
        for value in 1..=10_000u64 {
            histogram.record(value * 1000);
        }
        let p = histogram.percentiles();
        assert_eq!(p.count, 10_000);
        assert_eq!(p.max, 10_000_000);
        for (got, want) in [
            (p.p50, 5_000_000u64),
            (p.p99, 9_900_000),
            (p.p999, 9_990_000),
        ] {
            assert!(got >= want && got <= want + want / 60, "{got} vs {want}");
        }
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
