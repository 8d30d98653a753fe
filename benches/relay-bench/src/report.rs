//! What a run measured, and its two renderings: a human summary and one
//! JSON object for scripts.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use super::histogram::Percentiles;

/// Everything that went wrong in a run; all zero in a good one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    /// Messages never delivered to a subscriber that should have had them.
    pub lost: u64,
    /// Deliveries of a message already delivered, or delivered late.
    pub duplicated: u64,
    /// Deliveries found at another place in the sequence than the other
    /// subscribers had them: a reordering, or (until that subscriber's
    /// next opened delivery) the deliveries after a loss or a duplicate.
    pub out_of_step: u64,
    /// Records that did not open or did not come from a known sender.
    pub forged: u64,
    /// Records that did not end where every record ends.
    pub malformed: u64,
    /// Bytes a publisher received that nobody should have sent it.
    pub unexpected: u64,
    /// Clients whose connection the relay closed.
    pub disconnected: u64,
    /// Handshakes the relay refused (the handshakes scenario).
    pub refused: u64,
}

impl Errors {
    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.out_of_step
            + self.forged
            + self.malformed
            + self.unexpected
            + self.disconnected
            + self.refused
    }
}

/// The relay's memory with idle connections (the `idle` scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleMemory {
    /// Relay RSS before connecting, in bytes.
    pub rss_before: u64,
    /// Relay RSS with every connection open and idle, in bytes.
    pub rss_idle: u64,
    /// Relay RSS after each connection received one message, in bytes.
    pub rss_after_message: Option<u64>,
}

impl IdleMemory {
    /// Relay RSS per idle connection, in bytes.
    pub fn per_connection(&self, connections: usize) -> f64 {
        self.rss_idle.saturating_sub(self.rss_before) as f64 / connections.max(1) as f64
    }
}

/// One run's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `fanout`, `room`, `latency` or `idle`.
    pub scenario: &'static str,
    /// `eaxchat`, `plain` or `redis`.
    pub protocol: &'static str,
    /// Subscribers (fanout, latency), clients (room) or connections (idle).
    pub clients: usize,
    /// Message size in bytes (the plaintext for eaxchat).
    pub size: usize,
    /// Bytes of one line on the wire, terminator included.
    pub line_len: usize,
    /// The flow-control window, in messages.
    pub window: u64,
    /// The paced rate, messages per second (latency only).
    pub rate: Option<u64>,
    /// From the first message sent to the last delivered.
    pub run_time: Duration,
    /// Messages published.
    pub messages: u64,
    /// Messages delivered, over all subscribers.
    pub deliveries: u64,
    /// Deliveries opened and verified.
    pub verified: u64,
    /// Delivery latency: from the write of a message to its arrival in a
    /// subscriber's socket (latency scenario: the kernel's receive stamp)
    /// or to relay-bench reading it (the others).
    pub latency: Option<Percentiles>,
    /// The same for each relay the subscribers were spread over
    /// (`--subscribe-at`, more than one), in the order given.
    pub latency_by_relay: Vec<(SocketAddr, Percentiles)>,
    /// How far behind its schedule a paced publisher fell at worst.
    pub send_lag: Option<Duration>,
    /// What went wrong.
    pub errors: Errors,
    /// CPU time relay-bench used during the run (against a TLS server,
    /// the CPU time of `openssl s_time`, the load generator there).
    pub cpu_time: Duration,
    /// CPU time the relay used during the run, when its pid was given.
    pub relay_cpu_time: Option<Duration>,
    /// Relay memory, for the idle scenario.
    pub idle: Option<IdleMemory>,
    /// Connections held in other rooms meanwhile (`--bystanders`).
    pub bystanders: usize,
    /// Handshakes finished (the handshakes scenario).
    pub handshakes: Option<u64>,
}

impl Report {
    fn per_second(&self, count: u64) -> f64 {
        let secs = self.run_time.as_secs_f64();
        if secs > 0.0 { count as f64 / secs } else { 0.0 }
    }

    /// Deliveries per second.
    pub fn deliveries_per_sec(&self) -> f64 {
        self.per_second(self.deliveries)
    }

    /// Messages published per second.
    pub fn messages_per_sec(&self) -> f64 {
        self.per_second(self.messages)
    }

    /// Handshakes finished per second (the handshakes scenario).
    pub fn handshakes_per_sec(&self) -> Option<f64> {
        self.handshakes.map(|n| self.per_second(n))
    }

    /// Microseconds of `cpu` per finished handshake.
    fn micros_per_handshake(&self, cpu: Duration) -> Option<f64> {
        self.handshakes
            .filter(|&n| n > 0)
            .map(|n| cpu.as_secs_f64() * 1e6 / n as f64)
    }

    /// relay-bench's CPU time as a fraction of the run time: near 1.0 means
    /// relay-bench, not the relay, may be the limit.
    pub fn cpu_share(&self) -> f64 {
        let secs = self.run_time.as_secs_f64();
        if secs > 0.0 {
            self.cpu_time.as_secs_f64() / secs
        } else {
            0.0
        }
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let mut json = Json::default();
        json.string("scenario", self.scenario);
        json.string("protocol", self.protocol);
        json.number("clients", self.clients as f64);
        json.number("bystanders", self.bystanders as f64);
        json.number("size", self.size as f64);
        json.number("line_len", self.line_len as f64);
        json.number("window", self.window as f64);
        json.optional("rate", self.rate.map(|r| r as f64));
        json.number("run_time_s", self.run_time.as_secs_f64());
        json.number("messages", self.messages as f64);
        json.number("deliveries", self.deliveries as f64);
        json.number("messages_per_s", self.messages_per_sec());
        json.number("deliveries_per_s", self.deliveries_per_sec());
        json.number("verified", self.verified as f64);
        if let Some(handshakes) = self.handshakes {
            json.number("handshakes", handshakes as f64);
            json.optional("handshakes_per_s", self.handshakes_per_sec());
            json.optional(
                "cpu_us_per_handshake",
                self.micros_per_handshake(self.cpu_time),
            );
            json.optional(
                "relay_cpu_us_per_handshake",
                self.relay_cpu_time
                    .and_then(|cpu| self.micros_per_handshake(cpu)),
            );
        }
        if let Some(p) = &self.latency {
            json.number("latency_count", p.count as f64);
            json.number("latency_p50_us", micros(p.p50));
            json.number("latency_p90_us", micros(p.p90));
            json.number("latency_p99_us", micros(p.p99));
            json.number("latency_p999_us", micros(p.p999));
            json.number("latency_max_us", micros(p.max));
        }
        // Flat keys, one set per relay: latency_at0_p99_us and so on.
        for (i, (addr, p)) in self.latency_by_relay.iter().enumerate() {
            json.string(&format!("latency_at{i}_addr"), &addr.to_string());
            json.number(&format!("latency_at{i}_count"), p.count as f64);
            json.number(&format!("latency_at{i}_p50_us"), micros(p.p50));
            json.number(&format!("latency_at{i}_p90_us"), micros(p.p90));
            json.number(&format!("latency_at{i}_p99_us"), micros(p.p99));
            json.number(&format!("latency_at{i}_p999_us"), micros(p.p999));
        }
        json.optional(
            "send_lag_max_us",
            self.send_lag.map(|lag| lag.as_secs_f64() * 1e6),
        );
        let e = &self.errors;
        json.number("errors", e.total() as f64);
        json.number("errors_lost", e.lost as f64);
        json.number("errors_duplicated", e.duplicated as f64);
        json.number("errors_out_of_step", e.out_of_step as f64);
        json.number("errors_forged", e.forged as f64);
        json.number("errors_malformed", e.malformed as f64);
        json.number("errors_unexpected", e.unexpected as f64);
        json.number("errors_disconnected", e.disconnected as f64);
        json.number("errors_refused", e.refused as f64);
        json.number("cpu_s", self.cpu_time.as_secs_f64());
        json.number("cpu_share", self.cpu_share());
        json.optional("relay_cpu_s", self.relay_cpu_time.map(|t| t.as_secs_f64()));
        if let Some(idle) = &self.idle {
            json.number("relay_rss_before_kib", idle.rss_before as f64 / 1024.0);
            json.number("relay_rss_idle_kib", idle.rss_idle as f64 / 1024.0);
            json.optional(
                "relay_rss_after_message_kib",
                idle.rss_after_message.map(|b| b as f64 / 1024.0),
            );
            json.number(
                "relay_rss_per_conn_bytes",
                idle.per_connection(self.clients),
            );
        }
        json.finish()
    }
}

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.scenario {
            "room" => "clients",
            "idle" => "connections",
            "handshakes" => "in flight",
            _ => "subscribers",
        };
        write!(
            f,
            "{} ({}): {} {role}",
            self.scenario, self.protocol, self.clients
        )?;
        if self.handshakes.is_none() {
            write!(f, ", {} B messages ({} B lines)", self.size, self.line_len)?;
        }
        if let Some(rate) = self.rate {
            write!(f, ", paced at {rate} msg/s")?;
        }
        writeln!(f)?;
        if let Some(handshakes) = self.handshakes {
            writeln!(
                f,
                "  {:.2} s: {handshakes} handshakes ({:.0}/s)",
                self.run_time.as_secs_f64(),
                self.handshakes_per_sec().unwrap_or(0.0),
            )?;
            if let Some(relay) = self
                .relay_cpu_time
                .and_then(|cpu| self.micros_per_handshake(cpu))
            {
                writeln!(f, "  server CPU {relay:.1} us per handshake")?;
            }
        } else if self.scenario != "idle" {
            writeln!(
                f,
                "  {:.2} s: {} messages ({:.0}/s), {} deliveries ({:.3}M/s), {} verified",
                self.run_time.as_secs_f64(),
                self.messages,
                self.messages_per_sec(),
                self.deliveries,
                self.deliveries_per_sec() / 1e6,
                self.verified,
            )?;
        }
        if let Some(p) = &self.latency {
            writeln!(
                f,
                "  latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)",
                micros(p.p50),
                micros(p.p90),
                micros(p.p99),
                micros(p.p999),
                micros(p.max),
                p.count
            )?;
        }
        for (addr, p) in &self.latency_by_relay {
            writeln!(
                f,
                "    on {addr}: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  ({} samples)",
                micros(p.p50),
                micros(p.p90),
                micros(p.p99),
                micros(p.p999),
                p.count
            )?;
        }
        if let Some(lag) = self.send_lag {
            writeln!(
                f,
                "  publisher at most {:.1} us behind its schedule",
                lag.as_secs_f64() * 1e6
            )?;
        }
        if let Some(idle) = &self.idle {
            write!(
                f,
                "  relay RSS: {} KiB before, {} KiB with {} idle connections: {:.0} B per connection",
                idle.rss_before / 1024,
                idle.rss_idle / 1024,
                self.clients,
                idle.per_connection(self.clients)
            )?;
            if let Some(after) = idle.rss_after_message {
                write!(f, "; {} KiB after one message each", after / 1024)?;
            }
            writeln!(f)?;
        }
        let e = &self.errors;
        writeln!(
            f,
            "  errors: {} (lost {}, duplicated {}, out of step {}, forged {}, malformed {}, \
             unexpected {}, disconnected {}, refused {})",
            e.total(),
            e.lost,
            e.duplicated,
            e.out_of_step,
            e.forged,
            e.malformed,
            e.unexpected,
            e.disconnected,
            e.refused
        )?;
        write!(
            f,
            "  {} CPU {:.2} s ({:.0}% of the run)",
            // Against a TLS server the load generator is `openssl s_time`.
            if self.protocol == "tls" {
                "s_time"
            } else {
                "relay-bench"
            },
            self.cpu_time.as_secs_f64(),
            self.cpu_share() * 100.0
        )?;
        if let Some(relay) = self.relay_cpu_time {
            write!(f, "; relay CPU {:.2} s", relay.as_secs_f64())?;
        }
        Ok(())
    }
}

/// A flat JSON object of strings and numbers: all a report needs.
#[derive(Default)]
struct Json(String);

impl Json {
    fn key(&mut self, key: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        // Keys are this module's own identifiers: nothing to escape.
        let _ = write!(self.0, "\"{key}\":");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        let _ = write!(self.0, "\"{}\"", value.escape_default());
    }

    fn number(&mut self, key: &str, value: f64) {
        self.key(key);
        if !value.is_finite() {
            self.0.push_str("null");
        } else if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = write!(self.0, "{}", value as i64);
        } else {
            let _ = write!(self.0, "{value:.3}");
        }
    }

    fn optional(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(value) => self.number(key, value),
            None => {
                self.key(key);
                self.0.push_str("null");
            }
        }
    }

    fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_flat_object() {
        let report = Report {
            scenario: "fanout",
            protocol: "eaxchat",
            clients: 100,
            size: 64,
            line_len: 129,
            window: 1000,
            rate: None,
            run_time: Duration::from_millis(1500),
            messages: 3,
            deliveries: 300,
            verified: 5,
            latency: None,
            latency_by_relay: vec![(
                "127.0.0.1:9001".parse().unwrap(),
                Percentiles {
                    count: 10,
                    p99: 1500,
                    ..Percentiles::default()
                },
            )],
            send_lag: None,
            errors: Errors {
                lost: 2,
                ..Errors::default()
            },
            cpu_time: Duration::from_millis(750),
            relay_cpu_time: None,
            idle: None,
            bystanders: 0,
            handshakes: None,
        };
        let json = report.to_json();
        assert!(json.starts_with("{\"scenario\":\"fanout\",\"protocol\":\"eaxchat\""));
        assert!(json.contains("\"deliveries_per_s\":200,"), "{json}");
        assert!(json.contains("\"errors\":2,"), "{json}");
        assert!(json.contains("\"cpu_share\":0.500,"), "{json}");
        assert!(json.contains("\"relay_cpu_s\":null"), "{json}");
        assert!(
            json.contains("\"latency_at0_addr\":\"127.0.0.1:9001\",\"latency_at0_count\":10,"),
            "{json}"
        );
        assert!(json.contains("\"latency_at0_p99_us\":1.500,"), "{json}");
        assert!(json.ends_with('}'));
        assert!(report.to_string().contains("errors: 2 (lost 2"));
    }
}
