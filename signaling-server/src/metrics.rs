//! Counters for `/metrics`, in the Prometheus text format. Lock-free atomics on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::db::now_ms;

/// Upper bounds (ms) of the gateway latency histogram buckets.
const LATENCY_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000];
/// Seconds over which the message rate is averaged.
const RATE_WINDOW: usize = 10;

#[derive(Default)]
pub struct Metrics {
    pub messages: AtomicU64,
    pub logins: AtomicU64,
    pub failed_logins: AtomicU64,
    pub rate_limited: AtomicU64,
    pub gateway_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    /// Messages per second for the last few seconds: slot = second % window, tagged with the
    /// second it counts so stale slots read as zero.
    per_second: [(AtomicU64, AtomicU64); RATE_WINDOW],
}

impl Metrics {
    pub fn message_stored(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        let sec = (now_ms() / 1000) as u64;
        let (tag, count) = &self.per_second[(sec as usize) % RATE_WINDOW];
        if tag.swap(sec, Ordering::Relaxed) != sec {
            count.store(0, Ordering::Relaxed);
        }
        count.fetch_add(1, Ordering::Relaxed);
    }

    fn messages_per_second(&self) -> f64 {
        let now = (now_ms() / 1000) as u64;
        let total: u64 = self
            .per_second
            .iter()
            .filter(|(tag, _)| {
                let t = tag.load(Ordering::Relaxed);
                t < now && now - t <= RATE_WINDOW as u64
            })
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum();
        total as f64 / RATE_WINDOW as f64
    }

    /// Time from a gateway op arriving to its answer going out.
    pub fn observe_gateway_latency(&self, d: Duration) {
        let ms = d.as_millis() as u64;
        let i = LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, connections: usize, users: usize, sessions: usize) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        gauge(
            "hearth_connected_users",
            "Users with at least one live gateway connection.",
            "gauge",
            users.to_string(),
        );
        gauge("hearth_gateway_connections", "Live gateway connections.", "gauge", connections.to_string());
        gauge(
            "hearth_gateway_sessions",
            "Gateway sessions, including resumable ones.",
            "gauge",
            sessions.to_string(),
        );
        gauge(
            "hearth_messages_total",
            "Messages stored.",
            "counter",
            self.messages.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "hearth_messages_per_second",
            "Messages stored per second, averaged over 10 s.",
            "gauge",
            format!("{:.2}", self.messages_per_second()),
        );
        gauge(
            "hearth_logins_total",
            "Successful logins.",
            "counter",
            self.logins.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "hearth_failed_logins_total",
            "Failed logins.",
            "counter",
            self.failed_logins.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "hearth_rate_limited_total",
            "Requests refused by a rate limit.",
            "counter",
            self.rate_limited.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "hearth_gateway_errors_total",
            "Gateway ops answered with an error.",
            "counter",
            self.gateway_errors.load(Ordering::Relaxed).to_string(),
        );
        let name = "hearth_gateway_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a gateway op arriving to its acknowledgement.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", *bound as f64 / 1000.0);
        }
        cumulative += self.latency_buckets[LATENCY_BUCKETS_MS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.latency_count.load(Ordering::Relaxed));
        out
    }
}
