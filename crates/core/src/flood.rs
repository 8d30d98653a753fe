//! Flood control: a token bucket per connection (`--rate`, `--burst`).
//!
//! A bucket holds at most `burst` tokens and gains `rate` a second; each
//! frame a connection sends after its first takes one, and a frame that
//! finds the bucket empty is refused (its sender is told, its room never
//! sees it). The clock is the relay's, so tests drive it: this module
//! never reads one, and never tells the sender anything itself.

use std::time::Instant;

/// Members mode's default `--rate`: messages a second, sustained.
///
/// ssh-chat allows 3 messages in 3 seconds. A person typing sends far
/// less than one line a second; five a second sustained (300 a minute)
/// is out of reach of typing but stops a script at once.
pub const MEMBERS_RATE: f64 = 5.0;

/// Members mode's default `--burst`: a paste of 20 lines goes through
/// whole, then the rate applies.
pub const MEMBERS_BURST: u32 = 20;

/// A flood-control rate: `per_second` tokens a second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens gained each second.
    pub per_second: f64,
    /// Most tokens held.
    pub burst: u32,
}

impl Rate {
    /// A rate, or `None` (no flood control) when `per_second` is 0.
    pub fn new(per_second: f64, burst: u32) -> Option<Rate> {
        (per_second > 0.0).then_some(Rate {
            per_second,
            burst: burst.max(1),
        })
    }
}

/// One connection's bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            last: now,
        }
    }

    /// Takes a token at `now` if there is one; `false` if the frame is to
    /// be refused.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let gained = now.saturating_duration_since(self.last).as_secs_f64() * rate.per_second;
        self.tokens = (self.tokens + gained).min(f64::from(rate.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let rate = Rate::new(2.0, 3).expect("a rate");
        let start = Instant::now();
        let mut bucket = Bucket::full(rate, start);
        assert!((0..3).all(|_| bucket.take(rate, start)));
        assert!(!bucket.take(rate, start));
        assert!(!bucket.take(rate, start + Duration::from_millis(400)));
        assert!(bucket.take(rate, start + Duration::from_millis(500)));
        // Idle for long: never more than the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(rate, later)));
        assert!(!bucket.take(rate, later));
    }

    #[test]
    fn rate_zero_is_off() {
        assert_eq!(Rate::new(0.0, 10), None);
    }
}
