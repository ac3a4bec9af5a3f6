//! The server's metrics, served as Prometheus text (exposition format
//! 0.0.4) at `/metrics` on `health_check_server.port` (`crate::health`).
//!
//! The API is small so call sites stay one line:
//! - [`timed`]: one request of a type (wire type number), its latency, and
//!   whether it was answered with an error ([`error_sent`], called where
//!   an ErrorResponse is written, counts against the request the thread is
//!   serving);
//! - [`ScriptGuard`]: a lifecycle step (`setup.sh`, `create.sh`, ...) that
//!   failed, timed out or could not be run;
//! - [`set_gauges`]: a callback the server provides, read at each scrape,
//!   for what is a state rather than an event (containers, jobs, pools).
//!
//! Metrics (every name starts with `warden_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `warden_requests_total` | counter | `type` (ping, create, run, ...) |
//! | `warden_request_errors_total` | counter | `type`: answered with an ErrorResponse |
//! | `warden_request_duration_seconds` | histogram | `type` (link/run/stream: until the job ends) |
//! | `warden_script_failures_total` | counter | `script` |
//! | `warden_containers` | gauge | `state` (born, active, stopped, destroyed) |
//! | `warden_jobs` | gauge | `state` (running, exited) |
//! | `warden_pool_in_use` / `warden_pool_size` | gauge | `pool` (network, uid, port) |
//! | `warden_uptime_seconds` | gauge | |

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default, Clone)]
struct Hist {
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    errors: u64,
}

/// What the server reports at each scrape (see [`set_gauges`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Gauges {
    /// (state, containers in it)
    pub containers: Vec<(&'static str, u64)>,
    pub jobs_running: u64,
    pub jobs_exited: u64,
    /// (pool, in use, size)
    pub pools: Vec<(&'static str, u64, u64)>,
}

type GaugeFn = Box<dyn Fn() -> Gauges + Send + Sync>;

struct Registry {
    requests: BTreeMap<String, Hist>,
    scripts: BTreeMap<String, u64>,
}

static REG: Mutex<Registry> = Mutex::new(Registry {
    requests: BTreeMap::new(),
    scripts: BTreeMap::new(),
});
static GAUGES: Mutex<Option<GaugeFn>> = Mutex::new(None);
static START: Mutex<Option<Instant>> = Mutex::new(None);

thread_local! {
    /// The request type this thread is serving (for [`error_sent`]).
    static CURRENT: Cell<Option<i32>> = const { Cell::new(None) };
}

fn reg() -> std::sync::MutexGuard<'static, Registry> {
    REG.lock().unwrap_or_else(|e| e.into_inner())
}

/// The metric label of a wire type number: warden's snake_case name.
pub fn kind(raw: Option<i32>) -> String {
    match raw.and_then(|r| crate::proto::Type::try_from(r).ok()) {
        Some(t) => snake(t.name()),
        None => "unknown".into(),
    }
}

fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(ch.to_ascii_lowercase());
        } else {
            s.push(ch);
        }
    }
    s
}

/// Records one request of `kind` that took `d`.
pub fn request(kind: &str, d: Duration) {
    let mut r = reg();
    let h = r.requests.entry(kind.to_string()).or_default();
    if h.counts.is_empty() {
        h.counts = vec![0; BUCKETS.len() + 1];
    }
    let s = d.as_secs_f64();
    let i = BUCKETS
        .iter()
        .position(|b| s <= *b)
        .unwrap_or(BUCKETS.len());
    h.counts[i] += 1;
    h.sum += s;
    h.count += 1;
}

/// Runs `f`, the serving of one request of wire type `raw`, and records
/// it: count, latency, and (through [`error_sent`]) whether it failed.
pub fn timed<T>(raw: Option<i32>, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    CURRENT.with(|c| c.set(raw));
    let k = kind(raw);
    // Counted before `f` runs so an error sent during it finds its entry.
    {
        let mut r = reg();
        let h = r.requests.entry(k.clone()).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len() + 1];
        }
    }
    let out = f();
    CURRENT.with(|c| c.set(None));
    request(&k, t0.elapsed());
    out
}

/// An ErrorResponse was sent for the request this thread is serving.
pub fn error_sent() {
    let k = kind(CURRENT.with(|c| c.get()));
    reg().requests.entry(k).or_default().errors += 1;
}

/// Counts a failed lifecycle step when dropped, unless [`ScriptGuard::ok`]
/// was called: `let g = ScriptGuard::new(step); ...; g.ok();`.
pub struct ScriptGuard<'a> {
    step: &'a str,
    ok: bool,
}

impl<'a> ScriptGuard<'a> {
    pub fn new(step: &'a str) -> Self {
        ScriptGuard { step, ok: false }
    }
    pub fn ok(mut self) {
        self.ok = true;
    }
}

impl Drop for ScriptGuard<'_> {
    fn drop(&mut self) {
        if !self.ok {
            script_failed(self.step);
        }
    }
}

/// Records a failed lifecycle step.
pub fn script_failed(name: &str) {
    *reg().scripts.entry(name.to_string()).or_default() += 1;
}

/// The callback read at each scrape for the server's current state.
pub fn set_gauges(f: impl Fn() -> Gauges + Send + Sync + 'static) {
    *GAUGES.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    START
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Instant::now);
}

/// The gauges of a running server, from its public state: containers by
/// state, their jobs, and what the containers hold of each pool.
pub fn gauges_of(srv: &crate::server::Server) -> Gauges {
    use crate::container::State;
    let mut by_state: BTreeMap<&'static str, u64> =
        [State::Born, State::Active, State::Stopped, State::Destroyed]
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
    let mut g = Gauges::default();
    let (mut nets, mut ports) = (0u64, 0u64);
    for c in srv.containers() {
        let inner = c.lock();
        *by_state.entry(inner.state.as_str()).or_default() += 1;
        nets += 1;
        ports += inner.res.ports.len() as u64;
        for j in inner.jobs.values() {
            if j.finished().is_some() {
                g.jobs_exited += 1;
            } else {
                g.jobs_running += 1;
            }
        }
    }
    g.containers = by_state.into_iter().collect();
    let cfg = &srv.cfg;
    g.pools = vec![
        ("network", nets, cfg.pool_network.size() / 4),
        ("uid", nets, u64::from(cfg.uid_size)),
        ("port", ports, u64::from(cfg.port_size)),
    ];
    g
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Everything, as Prometheus text.
pub fn render() -> String {
    let mut o = String::new();
    let (requests, scripts) = {
        let r = reg();
        (r.requests.clone(), r.scripts.clone())
    };
    render_requests(&mut o, &requests);
    o.push_str("# HELP warden_script_failures_total Lifecycle steps that failed, by script.\n");
    o.push_str("# TYPE warden_script_failures_total counter\n");
    for (k, n) in &scripts {
        let _ = writeln!(
            o,
            "warden_script_failures_total{{script=\"{}\"}} {n}",
            esc(k)
        );
    }
    let g = GAUGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|f| f());
    if let Some(g) = g {
        render_gauges(&mut o, &g);
    }
    if let Some(t) = *START.lock().unwrap_or_else(|e| e.into_inner()) {
        o.push_str("# HELP warden_uptime_seconds Seconds since the server started.\n");
        o.push_str("# TYPE warden_uptime_seconds gauge\n");
        let _ = writeln!(o, "warden_uptime_seconds {}", t.elapsed().as_secs_f64());
    }
    o
}

/// The request counters and duration histograms, by type.
fn render_requests(o: &mut String, requests: &BTreeMap<String, Hist>) {
    o.push_str("# HELP warden_requests_total Requests served, by type.\n");
    o.push_str("# TYPE warden_requests_total counter\n");
    for (k, h) in requests {
        let _ = writeln!(
            o,
            "warden_requests_total{{type=\"{}\"}} {}",
            esc(k),
            h.count
        );
    }
    o.push_str(
        "# HELP warden_request_errors_total Requests answered with an ErrorResponse, by type.\n",
    );
    o.push_str("# TYPE warden_request_errors_total counter\n");
    for (k, h) in requests {
        let _ = writeln!(
            o,
            "warden_request_errors_total{{type=\"{}\"}} {}",
            esc(k),
            h.errors
        );
    }
    o.push_str("# HELP warden_request_duration_seconds Time to serve a request, by type.\n");
    o.push_str("# TYPE warden_request_duration_seconds histogram\n");
    for (k, h) in requests {
        let k = esc(k);
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += h.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "warden_request_duration_seconds_bucket{{type=\"{k}\",le=\"{b}\"}} {cum}"
            );
        }
        let _ = writeln!(
            o,
            "warden_request_duration_seconds_bucket{{type=\"{k}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            o,
            "warden_request_duration_seconds_sum{{type=\"{k}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            o,
            "warden_request_duration_seconds_count{{type=\"{k}\"}} {}",
            h.count
        );
    }
}

/// The gauges the server reports (containers, jobs, pools).
fn render_gauges(o: &mut String, g: &Gauges) {
    o.push_str("# HELP warden_containers Containers, by state.\n");
    o.push_str("# TYPE warden_containers gauge\n");
    for (s, n) in &g.containers {
        let _ = writeln!(o, "warden_containers{{state=\"{s}\"}} {n}");
    }
    o.push_str("# HELP warden_jobs Jobs the server tracks, by state.\n");
    o.push_str("# TYPE warden_jobs gauge\n");
    let _ = writeln!(o, "warden_jobs{{state=\"running\"}} {}", g.jobs_running);
    let _ = writeln!(o, "warden_jobs{{state=\"exited\"}} {}", g.jobs_exited);
    o.push_str("# HELP warden_pool_in_use Pool entries held by containers.\n");
    o.push_str("# TYPE warden_pool_in_use gauge\n");
    for (p, used, _) in &g.pools {
        let _ = writeln!(o, "warden_pool_in_use{{pool=\"{p}\"}} {used}");
    }
    o.push_str("# HELP warden_pool_size Pool entries configured.\n");
    o.push_str("# TYPE warden_pool_size gauge\n");
    for (p, _, size) in &g.pools {
        let _ = writeln!(o, "warden_pool_size{{pool=\"{p}\"}} {size}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Type;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn requests_scripts_and_histograms() {
        let ping = Some(Type::Ping as i32);
        timed(ping, || ());
        timed(ping, error_sent);
        request("ping", Duration::from_millis(30));
        {
            let g = ScriptGuard::new("t-ok.sh");
            g.ok();
        }
        drop(ScriptGuard::new("t-fail.sh"));
        let t = render();
        // Other tests of this process may add pings: compare with what the
        // text says about itself (count == +Inf bucket == sum of buckets).
        let n: u64 = line(&t, "warden_requests_total{type=\"ping\"}")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n >= 3, "{t}");
        assert!(line(&t, "warden_request_errors_total{type=\"ping\"}").ends_with(" 1"));
        let inf = line(
            &t,
            "warden_request_duration_seconds_bucket{type=\"ping\",le=\"+Inf\"}",
        );
        assert!(inf.ends_with(&format!(" {n}")), "{inf}");
        let le01 = line(
            &t,
            "warden_request_duration_seconds_bucket{type=\"ping\",le=\"0.01\"}",
        );
        let le05 = line(
            &t,
            "warden_request_duration_seconds_bucket{type=\"ping\",le=\"0.05\"}",
        );
        let v = |l: &str| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        assert!(v(le05) > v(le01), "the 30 ms request is above 0.01\n{t}");
        assert!(line(&t, "warden_script_failures_total{script=\"t-fail.sh\"}").ends_with(" 1"));
        assert!(!t.contains("t-ok.sh"), "{t}");
        assert_eq!(kind(Some(Type::CopyIn as i32)), "copy_in");
        assert_eq!(kind(Some(-5)), "unknown");
    }
}
