//! Summaries of the runs (median, min and max throughput; latency percentiles of all runs'
//! requests together; CPU per operation), the printed table, the targets, and the
//! JSON report.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::ops::{GroupResult, Op, RunResult};

/// One measured run of one operation.
pub(crate) struct RunStats {
    pub ok_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_cpu_us_per_op: f64,
    pub client_cpu_us_per_op: f64,
    /// PostgreSQL's CPU per operation (NaN on SQLite).
    pub database_cpu_us_per_op: f64,
    /// The server's context switches per operation.
    pub switches_per_op: f64,
    /// Share of the machine's CPU used by other processes during the window (noise).
    pub other_cpu_pct: f64,
    pub failed: BTreeMap<u16, u64>,
    pub transport_errors: u64,
}

/// The side load of `verify-under-password-load`.
pub(crate) struct SideStats {
    pub connections: usize,
    pub ok_per_s: Vec<f64>,
    pub hist: Histogram<u64>,
    pub failed: BTreeMap<u16, u64>,
}

pub(crate) struct OpResult {
    pub op: Op,
    pub connections: usize,
    pub runs: Vec<RunStats>,
    /// Every counted request of every run.
    pub hist: Histogram<u64>,
    pub side: Option<SideStats>,
}

fn cpus() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

impl RunStats {
    pub(crate) fn from_group(g: &GroupResult, run: &RunResult, cpu_ops: u64) -> Self {
        let per_op = |cpu_s: f64| {
            if cpu_ops == 0 {
                f64::NAN
            } else {
                cpu_s * 1e6 / cpu_ops as f64
            }
        };
        RunStats {
            ok_per_s: g.ok as f64 / run.seconds,
            p50_ms: ms(&g.hist, 0.5),
            p99_ms: ms(&g.hist, 0.99),
            server_cpu_us_per_op: per_op(run.server_cpu_s),
            client_cpu_us_per_op: per_op(run.client_cpu_s),
            switches_per_op: if cpu_ops == 0 {
                f64::NAN
            } else {
                run.server_context_switches as f64 / cpu_ops as f64
            },
            database_cpu_us_per_op: if run.database_cpu_s > 0.0 {
                per_op(run.database_cpu_s)
            } else {
                f64::NAN
            },
            other_cpu_pct: run.other_cpu_s * 100.0 / (run.seconds * cpus()),
            failed: g.failed.clone(),
            transport_errors: g.transport_errors,
        }
    }
}

impl OpResult {
    pub(crate) fn ok_per_s(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.ok_per_s).collect()
    }

    pub(crate) fn median_ok_per_s(&self) -> f64 {
        median(&self.ok_per_s())
    }

    pub(crate) fn p99_ms(&self) -> f64 {
        ms(&self.hist, 0.99)
    }

    fn failures(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in &self.runs {
            for (st, n) in &r.failed {
                *m.entry(failure_name(*st)).or_default() += n;
            }
            if r.transport_errors > 0 {
                *m.entry("transport".to_owned()).or_default() += r.transport_errors;
            }
        }
        m
    }

    pub(crate) fn to_json(&self) -> Value {
        let ok = self.ok_per_s();
        let cpu_s: Vec<f64> = self.runs.iter().map(|r| r.server_cpu_us_per_op).collect();
        let cpu_c: Vec<f64> = self.runs.iter().map(|r| r.client_cpu_us_per_op).collect();
        let other: Vec<f64> = self.runs.iter().map(|r| r.other_cpu_pct).collect();
        let cpu_d: Vec<f64> = self.runs.iter().map(|r| r.database_cpu_us_per_op).collect();
        let cs: Vec<f64> = self.runs.iter().map(|r| r.switches_per_op).collect();
        let mut v = json!({
            "op": self.op.name(),
            "connections": self.connections,
            "ok_per_s": { "median": round(median(&ok)), "min": round(min(&ok)), "max": round(max(&ok)) },
            "latency_ms": {
                "p50": round3(ms(&self.hist, 0.5)),
                "p99": round3(ms(&self.hist, 0.99)),
                "max": round3(self.hist.max() as f64 / 1000.0),
                "count": self.hist.len(),
            },
            "server_cpu_us_per_op": round(median(&cpu_s)),
            "bench_cpu_us_per_op": round(median(&cpu_c)),
            "database_cpu_us_per_op": round(median(&cpu_d)),
            "server_context_switches_per_op": round1(median(&cs)),
            "other_processes_cpu_pct_max": round(max(&other)),
            "failures": self.failures(),
            "runs": self.runs.iter().map(|r| json!({
                "ok_per_s": round(r.ok_per_s),
                "p50_ms": round3(r.p50_ms),
                "p99_ms": round3(r.p99_ms),
                "server_cpu_us_per_op": round(r.server_cpu_us_per_op),
                "bench_cpu_us_per_op": round(r.client_cpu_us_per_op),
                "database_cpu_us_per_op": round(r.database_cpu_us_per_op),
                "server_context_switches_per_op": round1(r.switches_per_op),
                "other_processes_cpu_pct": round(r.other_cpu_pct),
            })).collect::<Vec<_>>(),
        });
        if let Some(side) = &self.side {
            v["password_load"] = json!({
                "connections": side.connections,
                "ok_per_s": { "median": round(median(&side.ok_per_s)), "min": round(min(&side.ok_per_s)), "max": round(max(&side.ok_per_s)) },
                "latency_ms": { "p50": round3(ms(&side.hist, 0.5)), "p99": round3(ms(&side.hist, 0.99)) },
                "failures": side.failed.iter().map(|(k, n)| (failure_name(*k), *n)).collect::<BTreeMap<_, _>>(),
            });
        }
        v
    }
}

fn failure_name(status: u16) -> String {
    match status {
        0 => "valid_false".to_owned(),
        1 => "malformed_answer".to_owned(),
        s => s.to_string(),
    }
}

fn round(x: f64) -> Value {
    if x.is_finite() {
        json!(x.round())
    } else {
        Value::Null
    }
}

fn round1(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 10.0).round() / 10.0)
    } else {
        Value::Null
    }
}

fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// The printed table.
pub(crate) fn table(results: &[OpResult]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<28} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>11} {:>9} {:>6} {:>6}  {}\n",
        "operation",
        "conns",
        "ok/s med",
        "min",
        "max",
        "p50 ms",
        "p99 ms",
        "srv µs/op",
        "bench µs/op",
        "db µs/op",
        "cs/op",
        "other%",
        "failures"
    ));
    for r in results {
        let ok = r.ok_per_s();
        let cpu_s: Vec<f64> = r.runs.iter().map(|x| x.server_cpu_us_per_op).collect();
        let cpu_c: Vec<f64> = r.runs.iter().map(|x| x.client_cpu_us_per_op).collect();
        let other: Vec<f64> = r.runs.iter().map(|x| x.other_cpu_pct).collect();
        let cs: Vec<f64> = r.runs.iter().map(|x| x.switches_per_op).collect();
        let db: Vec<f64> = r.runs.iter().map(|x| x.database_cpu_us_per_op).collect();
        let db = median(&db);
        let db = if db.is_finite() {
            format!("{db:.0}")
        } else {
            "-".to_owned()
        };
        let failures = r
            .failures()
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{:<28} {:>5} {:>9.0} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>10.0} {:>11.0} {:>9} {:>6.1} {:>6.0}  {}\n",
            r.op.name(),
            r.connections,
            median(&ok),
            min(&ok),
            max(&ok),
            ms(&r.hist, 0.5),
            ms(&r.hist, 0.99),
            median(&cpu_s),
            median(&cpu_c),
            db,
            median(&cs),
            max(&other),
            if failures.is_empty() {
                "-"
            } else {
                failures.as_str()
            }
        ));
        if let Some(side) = &r.side {
            out.push_str(&format!(
                "{:<28} {:>5} {:>9.0} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>10} {:>11} {:>9} {:>6} {:>6}  {}\n",
                "  + signin-password load",
                side.connections,
                median(&side.ok_per_s),
                min(&side.ok_per_s),
                max(&side.ok_per_s),
                ms(&side.hist, 0.5),
                ms(&side.hist, 0.99),
                "",
                "",
                "",
                "",
                "",
                if side.failed.is_empty() {
                    "-".to_owned()
                } else {
                    side.failed
                        .iter()
                        .map(|(k, n)| format!("{}:{n}", failure_name(*k)))
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            ));
        }
    }
    out
}

/// Start-to-ready times of the restarts, in milliseconds.
pub(crate) struct Startup {
    pub ms: Vec<f64>,
    /// Peak RSS of the freshly started, idle server.
    pub idle_rss_kib: Vec<u64>,
}

/// One of the targets, checked against what was measured.
pub(crate) struct TargetCheck {
    pub name: String,
    pub wanted: String,
    pub measured: String,
    pub met: Option<bool>,
}

fn find(results: &[OpResult], op: Op, conns: usize) -> Option<&OpResult> {
    results
        .iter()
        .find(|r| r.op == op && r.connections == conns)
}

/// The targets (SQLite, 64 connections, median of the runs; PostgreSQL: verify).
pub(crate) fn targets(
    backend: &str,
    results: &[OpResult],
    peak_rss_kib: Option<u64>,
    startup: Option<&Startup>,
) -> Vec<TargetCheck> {
    let mut t = Vec::new();
    let verify = find(results, Op::Verify, 64);
    let health = find(results, Op::Health, 64);
    let loaded = find(results, Op::VerifyUnderPasswordLoad, 64);
    t.push(TargetCheck {
        name: "verify under password load".into(),
        wanted: "not starved".into(),
        measured: match (loaded, verify) {
            (Some(l), Some(v)) => format!(
                "{:.0} vs {:.0} ok/s ({:.0}%), p99 {:.1} ms",
                l.median_ok_per_s(),
                v.median_ok_per_s(),
                l.median_ok_per_s() * 100.0 / v.median_ok_per_s(),
                l.p99_ms()
            ),
            _ => "not measured".into(),
        },
        met: None,
    });
    let mut check = |name: &str, wanted: String, measured: Option<(String, bool)>| {
        t.push(TargetCheck {
            name: name.to_owned(),
            wanted,
            measured: measured
                .as_ref()
                .map(|m| m.0.clone())
                .unwrap_or_else(|| "not measured".to_owned()),
            met: measured.map(|m| m.1),
        });
    };
    if backend == "postgres" {
        check(
            "PostgreSQL verify, 64 conns",
            ">= 3000 ok/s".into(),
            verify.map(|v| {
                let x = v.median_ok_per_s();
                (format!("{x:.0} ok/s"), x >= 3000.0)
            }),
        );
        return t;
    }
    check(
        "verify vs /health, 64 conns",
        ">= 35% of /health".into(),
        verify.zip(health).map(|(v, h)| {
            let r = v.median_ok_per_s() / h.median_ok_per_s();
            (format!("{:.0}%", r * 100.0), r >= 0.35)
        }),
    );
    check(
        "verify throughput, 64 conns",
        ">= 10000 ok/s".into(),
        verify.map(|v| {
            let x = v.median_ok_per_s();
            (format!("{x:.0} ok/s"), x >= 10_000.0)
        }),
    );
    check(
        "verify p99, 64 conns",
        "< 10 ms".into(),
        verify.map(|v| (format!("{:.2} ms", v.p99_ms()), v.p99_ms() < 10.0)),
    );
    let enroll = find(results, Op::Enroll, 64);
    check(
        "UM enroll throughput, 64 conns",
        ">= 3000 ok/s".into(),
        enroll.map(|v| {
            let x = v.median_ok_per_s();
            (format!("{x:.0} ok/s"), x >= 3000.0)
        }),
    );
    check(
        "UM enroll p99, 64 conns",
        "< 30 ms".into(),
        enroll.map(|v| (format!("{:.2} ms", v.p99_ms()), v.p99_ms() < 30.0)),
    );
    check(
        "list vs /health, 64 conns",
        ">= 50% of /health".into(),
        find(results, Op::List, 64).zip(health).map(|(l, h)| {
            let r = l.median_ok_per_s() / h.median_ok_per_s();
            (format!("{:.0}%", r * 100.0), r >= 0.5)
        }),
    );
    check(
        "peak RSS",
        "< 64 MiB".into(),
        peak_rss_kib.map(|k| {
            let mib = k as f64 / 1024.0;
            (format!("{mib:.1} MiB"), mib < 64.0)
        }),
    );
    check(
        "start to ready /health",
        "< 200 ms".into(),
        startup.filter(|s| !s.ms.is_empty()).map(|s| {
            let m = median(&s.ms);
            (format!("{m:.0} ms (median)"), m < 200.0)
        }),
    );
    t
}

pub(crate) fn targets_table(t: &[TargetCheck]) -> String {
    let mut out = String::new();
    for c in t {
        out.push_str(&format!(
            "{:<32} {:<18} {:<18} {}\n",
            c.name,
            c.wanted,
            c.measured,
            match c.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None if c.measured != "not measured" => "(info)",
                None => "-",
            }
        ));
    }
    out
}

pub(crate) fn targets_json(t: &[TargetCheck]) -> Value {
    Value::Array(
        t.iter()
            .map(|c| json!({ "target": c.name, "wanted": c.wanted, "measured": c.measured, "met": c.met }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
