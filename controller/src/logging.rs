//! The server's log: `logging.level`, `logging.format` and `logging.file`.
//!
//! Levels are warden's (steno's) names ([`crate::config::LOG_LEVELS`]); a
//! record's level is written with the same names: error, warn, info, debug,
//! and `debug2` for the most verbose (log's trace).
//!
//! Formats, one record a line:
//! - `text`: `2026-01-02T03:04:05.678901Z info  MESSAGE key=value ...`
//! - `json`: one JSON object with steno's fields:
//!   `{"timestamp":1767323045.678901,"message":"...","log_level":"info",
//!   "source":"warden","data":{"key":"value"},"thread_id":"accept",
//!   "process_id":123,"file":"controller/src/server.rs","lineno":42}`:
//!   `timestamp` is seconds since the epoch (a float, as steno wrote it),
//!   `data` the record's key-values (`log::info!(handle = h; "...")`),
//!   `thread_id` the thread's name (or its id).
//!
//! `RUST_LOG` still overrides the level per module (env_logger's syntax).
//! Without `logging.file` records go to stderr.

use crate::config::{Config, LogFormat};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once records go to `logging.file` rather than stderr.
static TO_FILE: AtomicBool = AtomicBool::new(false);

/// Whether records go to a file (so a message meant for the operator must
/// also be written to stderr, and an error on stderr also logged).
pub fn to_file() -> bool {
    TO_FILE.load(Ordering::SeqCst)
}

/// The filter for a `logging.level` name.
pub fn level_filter(l: &str) -> log::LevelFilter {
    match l {
        "off" => log::LevelFilter::Off,
        "fatal" | "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "debug1" | "debug2" | "all" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    }
}

/// warden's name of a record's level.
pub fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "debug2",
    }
}

/// A record's key-values as a JSON object.
fn data(rec: &log::Record) -> serde_json::Map<String, serde_json::Value> {
    struct V<'a>(&'a mut serde_json::Map<String, serde_json::Value>);
    impl<'kvs> log::kv::VisitSource<'kvs> for V<'_> {
        fn visit_pair(
            &mut self,
            k: log::kv::Key<'kvs>,
            v: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            let j = if let Some(n) = v.to_u64() {
                n.into()
            } else if let Some(n) = v.to_i64() {
                n.into()
            } else if let Some(b) = v.to_bool() {
                b.into()
            } else {
                v.to_string().into()
            };
            self.0.insert(k.to_string(), j);
            Ok(())
        }
    }
    let mut m = serde_json::Map::new();
    let _ = rec.key_values().visit(&mut V(&mut m));
    m
}

/// One record as a JSON line (without the newline).
pub fn json_line(rec: &log::Record, now: std::time::SystemTime) -> String {
    let ts = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let t = std::thread::current();
    let thread = t
        .name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", t.id()));
    let mut o = serde_json::Map::new();
    o.insert("timestamp".into(), ts.into());
    o.insert("message".into(), rec.args().to_string().into());
    o.insert("log_level".into(), level_name(rec.level()).into());
    o.insert("source".into(), "warden".into());
    o.insert("data".into(), data(rec).into());
    o.insert("thread_id".into(), thread.into());
    o.insert("process_id".into(), std::process::id().into());
    if let Some(f) = rec.file() {
        o.insert("file".into(), f.into());
    }
    if let Some(l) = rec.line() {
        o.insert("lineno".into(), l.into());
    }
    serde_json::Value::Object(o).to_string()
}

/// Sets up the log as `cfg` says. `file` is the opened `logging.file`
/// (the caller opens it with its own checks). Warnings the config parser
/// collected are logged here.
pub fn init(cfg: &Config, file: Option<std::fs::File>) {
    let mut b = env_logger::Builder::new();
    b.filter_level(level_filter(&cfg.log_level));
    if let Ok(s) = std::env::var("RUST_LOG") {
        b.parse_filters(&s);
    }
    match cfg.log_format {
        LogFormat::Json => {
            b.format(|buf, rec| writeln!(buf, "{}", json_line(rec, std::time::SystemTime::now())));
        }
        LogFormat::Text => {
            b.format(|buf, rec| {
                let mut kv = String::new();
                for (k, v) in data(rec) {
                    match v {
                        serde_json::Value::String(s) => kv.push_str(&format!(" {k}={s:?}")),
                        v => kv.push_str(&format!(" {k}={v}")),
                    }
                }
                writeln!(
                    buf,
                    "{} {:<6}{}{kv}",
                    buf.timestamp_micros(),
                    level_name(rec.level()),
                    rec.args()
                )
            });
        }
    }
    if let Some(f) = file {
        b.target(env_logger::Target::Pipe(Box::new(f)));
        TO_FILE.store(true, Ordering::SeqCst);
    }
    let _ = b.try_init();
    for w in &cfg.warnings {
        log::warn!("config: {w}");
    }
}

/// A message for the operator: logged at info, and also written to stderr
/// when the log goes to a file (so it is seen once either way).
pub fn announce(msg: &str) {
    log::info!("{msg}");
    if to_file() {
        let _ = writeln!(std::io::stderr(), "warden: {msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_stenos_fields() {
        let rec = log::Record::builder()
            .args(format_args!("hello \"x\""))
            .level(log::Level::Trace)
            .file(Some("a.rs"))
            .line(Some(7))
            .key_values(&[("handle", "h1"), ("n", "x")])
            .build();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let v: serde_json::Value = serde_json::from_str(&json_line(&rec, t)).unwrap();
        assert_eq!(v["timestamp"], 1.5);
        assert_eq!(v["message"], "hello \"x\"");
        assert_eq!(v["log_level"], "debug2");
        assert_eq!(v["source"], "warden");
        assert_eq!(v["data"]["handle"], "h1");
        assert_eq!(v["lineno"], 7);
        assert_eq!(v["process_id"], std::process::id());
    }

    #[test]
    fn every_level_name_has_a_filter() {
        for l in crate::config::LOG_LEVELS {
            let f = level_filter(l);
            assert_eq!(f == log::LevelFilter::Off, *l == "off", "{l}");
        }
        assert_eq!(level_filter("debug2"), log::LevelFilter::Trace);
        assert_eq!(level_name(log::Level::Warn), "warn");
    }
}
