//! The machine-readable end of every bench: one JSON line per metric, exactly
//! `{"bench","metric","value","unit","peer","peer_value","target"}`, printed last.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub bench: &'static str,
    pub metric: String,
    /// Hearth's number. `None` (JSON null) when it could not be measured.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// What Hearth is compared with, e.g. "socket.io 4.8.1" or "sqlite raw".
    pub peer: Option<String>,
    pub peer_value: Option<f64>,
    /// The design target, e.g. ">=5x", "<20", "<=16384".
    pub target: Option<String>,
    /// A physical floor measured beside the peer in the same run (fan-out), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_value: Option<f64>,
    /// Clients connected while measuring, for benches that sweep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// The load regime, for benches with more than one ("steady", "busy").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regime: Option<&'static str>,
}

impl Metric {
    pub fn new(
        bench: &'static str,
        metric: impl Into<String>,
        value: Option<f64>,
        unit: &'static str,
    ) -> Self {
        Metric {
            bench,
            metric: metric.into(),
            value: value.map(round),
            unit,
            peer: None,
            peer_value: None,
            target: None,
            floor_value: None,
            connections: None,
            regime: None,
        }
    }

    pub fn floor(mut self, floor_value: Option<f64>) -> Self {
        self.floor_value = floor_value.map(round);
        self
    }

    pub fn connections(mut self, n: usize, regime: &'static str) -> Self {
        self.connections = Some(n as u64);
        self.regime = Some(regime);
        self
    }

    pub fn peer(mut self, peer: impl Into<String>, peer_value: Option<f64>) -> Self {
        self.peer = Some(peer.into());
        self.peer_value = peer_value.map(round);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
}

/// Keeps four significant decimals at most: the JSON lines are for reading and diffing.
fn round(v: f64) -> f64 {
    if !v.is_finite() {
        return v;
    }
    let magnitude = v.abs();
    let decimals = if magnitude >= 1000.0 {
        1
    } else if magnitude >= 1.0 {
        3
    } else {
        6
    };
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// Prints the JSON lines. Called once, after the human summary, as the last output of a bench.
pub fn print_metrics(metrics: &[Metric]) -> anyhow::Result<()> {
    for m in metrics {
        // Non-finite numbers become null: JSON has no NaN.
        let line = serde_json::to_string(m)?;
        println!("{line}");
    }
    Ok(())
}

/// A ratio that stays `None` instead of becoming infinite or NaN.
pub fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 && n.is_finite() && d.is_finite() => Some(n / d),
        _ => None,
    }
}

/// "1.23" or "n/a", for the human summary.
pub fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_line_has_exactly_the_agreed_keys() {
        let m = Metric::new("fanout", "p99_ms", Some(1.23456789), "ms")
            .peer("socket.io", Some(2.0))
            .target("<20");
        let line = serde_json::to_string(&m).unwrap();
        assert_eq!(
            line,
            r#"{"bench":"fanout","metric":"p99_ms","value":1.235,"unit":"ms","peer":"socket.io","peer_value":2.0,"target":"<20"}"#
        );
    }

    #[test]
    fn ratio_of_nothing_is_nothing() {
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
    }
}
