//! The environment the DEA gave an app, built as dea_ng did (lib/dea/env.rb,
//! lib/dea/env/exporter.rb, lib/dea/starting/env.rb,
//! lib/dea/staging/env.rb, lib/dea/starting/database_uri_generator.rb, at
//! the version whose start script still wrote logs/env.log and tee'd the
//! app's output; see [`super::start`]).
//!
//! **System variables, in this order** (starting):
//! `VCAP_APPLICATION`, `VCAP_SERVICES`, `MEMORY_LIMIT` (`<mb>m`),
//! `DATABASE_URL` (only when at least one service is bound: the first
//! relational service's `credentials.uri` with its scheme mapped to the
//! Rails adapter name, or empty when none is relational), `HOME=$PWD/app`,
//! `TMPDIR=$PWD/tmp`, `VCAP_APP_HOST=0.0.0.0`, `VCAP_APP_PORT=<container
//! port>`, `PORT=$VCAP_APP_PORT`. Staging has, after the first four,
//! `STAGING_TIMEOUT` and `MEMORY_LIMIT` again (Staging::Env; the DEA's
//! `BUILDPACK_CACHE` names a download URL that has no counterpart here).
//!
//! **VCAP_APPLICATION** is the Cloud Controller's part (`limits` {mem, disk,
//! fds}, `application_version`, `application_name`, `application_uris`,
//! and their legacy aliases `version`, `name`, `uris`, plus `users`: null)
//! merged with the DEA's instance part (`application_id`, `instance_id`,
//! `instance_index`, `host`, `port`, `started_at`, `started_at_timestamp`,
//! `start`, `state_timestamp`), keys in that order. Times are Ruby's
//! `Time#to_s` as Yajl wrote them: `2014-06-26 16:59:35 +0000`.
//!
//! **VCAP_SERVICES** is a JSON object from each service's `label` to the
//! list of its bindings, labels in order of first appearance; each binding
//! keeps only `name`, `label`, `tags`, `plan`, `plan_option`,
//! `credentials`, `syslog_drain_url` (in that order; a key that is absent,
//! null or false is left out, as Ruby's `if service[key]` did), values as
//! the services file wrote them (key order kept), without insignificant
//! whitespace.
//!
//! **Export lines** (Exporter): `export K=<shellescaped V>;` for
//! `VCAP_APPLICATION`, `VCAP_SERVICES` and `DATABASE_URL`, `export K="V";`
//! (only `"` escaped, so `$PWD` expands) for everything else, one a line.

use serde::Serialize;
use serde_json::value::RawValue;

/// Keys of a service binding that reach VCAP_SERVICES (Env::WHITELIST_SERVICE_KEYS).
pub const SERVICE_KEYS: [&str; 7] = [
    "name",
    "label",
    "tags",
    "plan",
    "plan_option",
    "credentials",
    "syslog_drain_url",
];

/// URI schemes DatabaseUriGenerator takes as relational.
const DB_SCHEMES: [&str; 6] = [
    "mysql",
    "mysql2",
    "postgres",
    "postgresql",
    "db2",
    "informix",
];

/// Why a services file or an env setting was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("services: {0}")]
    Services(String),
    #[error("--env {0:?}: want NAME=VALUE with NAME of letters, digits and _ (not starting with a digit)")]
    BadUserEnv(String),
}

/// `limits` of VCAP_APPLICATION (the Cloud Controller's order).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Limits {
    /// MB of memory.
    pub mem: u64,
    /// MB of disk.
    pub disk: u64,
    /// File descriptors.
    pub fds: u64,
}

/// The app as the Cloud Controller described it.
#[derive(Clone, Debug)]
pub struct App {
    pub id: String,
    pub name: String,
    pub version: String,
    pub uris: Vec<String>,
    pub limits: Limits,
}

/// One instance as the DEA described it.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: String,
    pub index: u32,
    /// The port the app listens on inside its container.
    pub container_port: u32,
    /// Seconds since the epoch when the instance entered STARTING.
    pub started_at: i64,
}

/// One service binding from the services file, with the whitelisted keys
/// kept as raw JSON.
#[derive(Clone, Debug)]
pub struct Service {
    label: String,
    /// (key, compact JSON) in [`SERVICE_KEYS`] order.
    kept: Vec<(&'static str, String)>,
    /// `credentials.uri`, when it is a string.
    uri: Option<String>,
}

/// Parses a services file: a JSON array of binding objects, each with a
/// string `label` (DEA start message `services`).
pub fn parse_services(text: &str) -> Result<Vec<Service>, EnvError> {
    let bad = |m: String| EnvError::Services(m);
    let list: Vec<std::collections::HashMap<String, Box<RawValue>>> =
        serde_json::from_str(text).map_err(|e| bad(format!("not a JSON array of objects: {e}")))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let label: String = match s.get("label") {
            Some(v) => serde_json::from_str(v.get())
                .map_err(|_| bad(format!("service {i}: label is not a string")))?,
            None => return Err(bad(format!("service {i}: no label"))),
        };
        let mut kept = Vec::new();
        for k in SERVICE_KEYS {
            if let Some(v) = s.get(k) {
                let raw = v.get().trim();
                if raw != "null" && raw != "false" {
                    kept.push((k, compact(raw)));
                }
            }
        }
        let uri = s.get("credentials").and_then(|c| {
            let c: serde_json::Value = serde_json::from_str(c.get()).ok()?;
            c.get("uri")?.as_str().map(str::to_string)
        });
        out.push(Service { label, kept, uri });
    }
    Ok(out)
}

/// Valid JSON text without the whitespace outside strings.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_str, mut esc) = (false, false);
    for ch in raw.chars() {
        if in_str {
            out.push(ch);
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_str = false;
            }
        } else if ch == '"' {
            in_str = true;
            out.push(ch);
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            out.push(ch);
        }
    }
    out
}

/// VCAP_SERVICES: bindings grouped by label.
pub fn vcap_services(services: &[Service]) -> String {
    let mut labels: Vec<(&str, Vec<&Service>)> = Vec::new();
    for s in services {
        match labels.iter_mut().find(|(l, _)| *l == s.label) {
            Some((_, v)) => v.push(s),
            None => labels.push((&s.label, vec![s])),
        }
    }
    let mut out = String::from("{");
    for (i, (label, list)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_str(label));
        out.push_str(":[");
        for (j, s) in list.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('{');
            for (n, (k, v)) in s.kept.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&json_str(k));
                out.push(':');
                out.push_str(v);
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    out
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// DATABASE_URL: the first service whose `credentials.uri` has a
/// relational scheme, with mysql -> mysql2, postgresql -> postgres,
/// db2 and informix -> ibmdb; None when no service qualifies.
pub fn database_url(services: &[Service]) -> Option<String> {
    services.iter().find_map(|s| {
        let uri = s.uri.as_deref()?;
        let (scheme, rest) = uri.split_once(':')?;
        if !DB_SCHEMES.contains(&scheme) {
            return None;
        }
        let adapter = match scheme {
            "mysql" => "mysql2",
            "postgresql" => "postgres",
            "db2" | "informix" => "ibmdb",
            s => s,
        };
        Some(format!("{adapter}:{rest}"))
    })
}

#[derive(Serialize)]
struct VcapApplication<'a> {
    limits: Limits,
    application_version: &'a str,
    application_name: &'a str,
    application_uris: &'a [String],
    version: &'a str,
    name: &'a str,
    uris: &'a [String],
    users: Option<()>,
    #[serde(flatten)]
    instance: Option<InstancePart<'a>>,
}

#[derive(Serialize)]
struct InstancePart<'a> {
    application_id: &'a str,
    instance_id: &'a str,
    instance_index: u32,
    host: &'a str,
    port: u32,
    started_at: String,
    started_at_timestamp: i64,
    start: String,
    state_timestamp: i64,
}

/// VCAP_APPLICATION; `inst` None for staging (Staging::Env adds nothing).
pub fn vcap_application(app: &App, inst: Option<&Instance>) -> String {
    let v = VcapApplication {
        limits: app.limits,
        application_version: &app.version,
        application_name: &app.name,
        application_uris: &app.uris,
        version: &app.version,
        name: &app.name,
        uris: &app.uris,
        users: None,
        instance: inst.map(|i| InstancePart {
            application_id: &app.id,
            instance_id: &i.id,
            instance_index: i.index,
            host: "0.0.0.0",
            port: i.container_port,
            started_at: ruby_time(i.started_at),
            started_at_timestamp: i.started_at,
            start: ruby_time(i.started_at),
            state_timestamp: i.started_at,
        }),
    };
    serde_json::to_string(&v).unwrap_or_default()
}

/// Ruby's `Time#to_s` of a UTC time: `YYYY-MM-DD HH:MM:SS +0000`.
pub fn ruby_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The system variables of a starting instance, in the DEA's order.
pub fn starting_system(app: &App, inst: &Instance, services: &[Service]) -> Vec<(String, String)> {
    let mut env = common(app, Some(inst), services);
    env.extend([
        ("HOME".into(), "$PWD/app".into()),
        ("TMPDIR".into(), "$PWD/tmp".into()),
        ("VCAP_APP_HOST".into(), "0.0.0.0".into()),
        ("VCAP_APP_PORT".into(), inst.container_port.to_string()),
        ("PORT".into(), "$VCAP_APP_PORT".into()),
    ]);
    env
}

/// The system variables of a staging task, in the DEA's order.
pub fn staging_system(
    app: &App,
    services: &[Service],
    staging_timeout: u64,
) -> Vec<(String, String)> {
    let mut env = common(app, None, services);
    env.extend([
        ("STAGING_TIMEOUT".into(), staging_timeout.to_string()),
        ("MEMORY_LIMIT".into(), format!("{}m", app.limits.mem)),
    ]);
    env
}

fn common(app: &App, inst: Option<&Instance>, services: &[Service]) -> Vec<(String, String)> {
    let mut env = vec![
        ("VCAP_APPLICATION".into(), vcap_application(app, inst)),
        ("VCAP_SERVICES".into(), vcap_services(services)),
        ("MEMORY_LIMIT".into(), format!("{}m", app.limits.mem)),
    ];
    if !services.is_empty() {
        env.push((
            "DATABASE_URL".into(),
            database_url(services).unwrap_or_default(),
        ));
    }
    env
}

/// Parses `--env NAME=VALUE` settings (user variables; VALUE may be empty
/// and may use `$OTHER`, as the DEA's double quotes allowed).
pub fn parse_user_env(list: &[String]) -> Result<Vec<(String, String)>, EnvError> {
    list.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| EnvError::BadUserEnv(s.clone()))?;
            let ok = k
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(EnvError::BadUserEnv(s.clone()));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Exporter#export: one `export` line per variable.
pub fn export(vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in vars {
        if matches!(
            k.as_str(),
            "DATABASE_URL" | "VCAP_SERVICES" | "VCAP_APPLICATION"
        ) {
            out.push_str(&format!("export {k}={};\n", shellescape(v)));
        } else {
            out.push_str(&format!("export {k}=\"{}\";\n", v.replace('"', "\\\"")));
        }
    }
    out
}

/// Ruby's `Shellwords.shellescape`: `''` for the empty string, a backslash
/// before every character but `A-Za-z0-9_-.,:+/@` and newline, and a
/// newline as `'\n'`.
pub fn shellescape(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let mut out = String::with_capacity(s.len() * 2);
    for ch in s.chars() {
        match ch {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' | '.' | ',' | ':' | '+' | '/' | '@' => {
                out.push(ch)
            }
            '\n' => out.push_str("'\n'"),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}

/// 32 lowercase hex digits from the kernel's random source (VCAP.secure_uuid).
pub fn secure_uuid() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            id: "appid".into(),
            name: "env-app".into(),
            version: "v1".into(),
            uris: vec!["env-app.example.com".into()],
            limits: Limits {
                mem: 256,
                disk: 512,
                fds: 1024,
            },
        }
    }

    fn inst() -> Instance {
        Instance {
            id: "iid".into(),
            index: 1,
            container_port: 61001,
            started_at: 1_403_801_975,
        }
    }

    const SERVICES: &str = r#"[
      {"name": "db", "label": "elephantsql", "tags": ["postgres"], "plan": "turtle",
       "credentials": {"uri": "postgresql://u:p@h:5432/d", "z": 1, "a": 2},
       "extra": "dropped", "plan_option": null, "syslog_drain_url": false},
      {"name": "cache", "label": "redis", "plan": "free", "credentials": {"uri": "redis://h"}},
      {"name": "db2nd", "label": "elephantsql", "credentials": {"uri": "mysql://x@y/z"}}
    ]"#;

    #[test]
    fn vcap_application_fields_and_order() {
        let v = vcap_application(&app(), Some(&inst()));
        assert_eq!(
            v,
            concat!(
                r#"{"limits":{"mem":256,"disk":512,"fds":1024},"application_version":"v1","#,
                r#""application_name":"env-app","application_uris":["env-app.example.com"],"#,
                r#""version":"v1","name":"env-app","uris":["env-app.example.com"],"users":null,"#,
                r#""application_id":"appid","instance_id":"iid","instance_index":1,"#,
                r#""host":"0.0.0.0","port":61001,"started_at":"2014-06-26 16:59:35 +0000","#,
                r#""started_at_timestamp":1403801975,"start":"2014-06-26 16:59:35 +0000","#,
                r#""state_timestamp":1403801975}"#
            )
        );
        // Staging: the Cloud Controller's part only.
        let s = vcap_application(&app(), None);
        assert!(s.ends_with(r#""users":null}"#), "{s}");
    }

    #[test]
    fn ruby_time_matches_known_dates() {
        assert_eq!(ruby_time(0), "1970-01-01 00:00:00 +0000");
        assert_eq!(ruby_time(951_782_400), "2000-02-29 00:00:00 +0000");
        assert_eq!(ruby_time(1_798_761_599), "2026-12-31 23:59:59 +0000");
    }

    #[test]
    fn vcap_services_grouped_by_label_whitelisted() {
        let s = parse_services(SERVICES).unwrap();
        assert_eq!(
            vcap_services(&s),
            concat!(
                r#"{"elephantsql":[{"name":"db","label":"elephantsql","tags":["postgres"],"#,
                r#""plan":"turtle","credentials":{"uri":"postgresql://u:p@h:5432/d","z":1,"a":2}},"#,
                r#"{"name":"db2nd","label":"elephantsql","credentials":{"uri":"mysql://x@y/z"}}],"#,
                r#""redis":[{"name":"cache","label":"redis","plan":"free","credentials":{"uri":"redis://h"}}]}"#
            )
        );
        assert_eq!(vcap_services(&[]), "{}");
    }

    #[test]
    fn services_file_errors() {
        assert!(matches!(parse_services("{}"), Err(EnvError::Services(_))));
        assert!(parse_services(r#"[{"name":"x"}]"#)
            .unwrap_err()
            .to_string()
            .contains("no label"));
        assert!(parse_services(r#"[{"label":3}]"#).is_err());
    }

    #[test]
    fn database_url_first_relational_with_adapter() {
        let s = parse_services(SERVICES).unwrap();
        assert_eq!(database_url(&s).as_deref(), Some("postgres://u:p@h:5432/d"));
        let s = parse_services(
            r#"[{"label":"r","credentials":{"uri":"redis://h"}},{"label":"m","credentials":{"uri":"mysql://a@b/c"}}]"#,
        )
        .unwrap();
        assert_eq!(database_url(&s).as_deref(), Some("mysql2://a@b/c"));
        let s = parse_services(r#"[{"label":"d","credentials":{"uri":"db2://h/x"}}]"#).unwrap();
        assert_eq!(database_url(&s).as_deref(), Some("ibmdb://h/x"));
        let s = parse_services(r#"[{"label":"r","credentials":{"uri":"redis://h"}}]"#).unwrap();
        assert_eq!(database_url(&s), None);
    }

    #[test]
    fn starting_system_env_order_and_values() {
        let s = parse_services(SERVICES).unwrap();
        let env = starting_system(&app(), &inst(), &s);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "VCAP_APPLICATION",
                "VCAP_SERVICES",
                "MEMORY_LIMIT",
                "DATABASE_URL",
                "HOME",
                "TMPDIR",
                "VCAP_APP_HOST",
                "VCAP_APP_PORT",
                "PORT"
            ]
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("MEMORY_LIMIT"), "256m");
        assert_eq!(get("DATABASE_URL"), "postgres://u:p@h:5432/d");
        assert_eq!(get("HOME"), "$PWD/app");
        assert_eq!(get("TMPDIR"), "$PWD/tmp");
        assert_eq!(get("VCAP_APP_HOST"), "0.0.0.0");
        assert_eq!(get("VCAP_APP_PORT"), "61001");
        assert_eq!(get("PORT"), "$VCAP_APP_PORT");
        // No services: no DATABASE_URL at all; services but none relational: empty.
        let env = starting_system(&app(), &inst(), &[]);
        assert!(!env.iter().any(|(k, _)| k == "DATABASE_URL"));
        let r = parse_services(r#"[{"label":"r"}]"#).unwrap();
        let env = starting_system(&app(), &inst(), &r);
        assert!(env.iter().any(|(k, v)| k == "DATABASE_URL" && v.is_empty()));
    }

    #[test]
    fn staging_system_env() {
        let env = staging_system(&app(), &[], 900);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "VCAP_APPLICATION",
                "VCAP_SERVICES",
                "MEMORY_LIMIT",
                "STAGING_TIMEOUT",
                "MEMORY_LIMIT"
            ]
        );
        assert_eq!(env[3].1, "900");
    }

    #[test]
    fn exporter_quotes_like_the_dea() {
        let vars = vec![
            ("VCAP_SERVICES".to_string(), r#"{"a":"b c"}"#.to_string()),
            ("DATABASE_URL".to_string(), String::new()),
            ("HOME".to_string(), "$PWD/app".to_string()),
            ("Q".to_string(), r#"say "hi""#.to_string()),
        ];
        assert_eq!(
            export(&vars),
            "export VCAP_SERVICES=\\{\\\"a\\\":\\\"b\\ c\\\"\\};\nexport DATABASE_URL='';\nexport HOME=\"$PWD/app\";\nexport Q=\"say \\\"hi\\\"\";\n"
        );
    }

    #[test]
    fn shellescape_matches_ruby() {
        assert_eq!(shellescape(""), "''");
        assert_eq!(shellescape("abc-1.2,3:4+5/6@7_"), "abc-1.2,3:4+5/6@7_");
        assert_eq!(shellescape("a b'c$"), "a\\ b\\'c\\$");
        assert_eq!(shellescape("x\ny"), "x'\n'y");
        assert_eq!(shellescape("é"), "\\é");
    }

    #[test]
    fn exported_values_survive_a_shell() {
        // The shell gives back exactly what went in (checked with /bin/sh).
        let v = "{\"k\":\"a b $HOME `x` \\\\ 'q' \n é\"}";
        let script = format!(
            "{}printf %s \"$VCAP_SERVICES\"",
            export(&[("VCAP_SERVICES".into(), v.into())])
        );
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), v);
    }

    #[test]
    fn user_env_parsing() {
        let e = parse_user_env(&["A=1".into(), "B_2=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(
            e,
            vec![
                ("A".into(), "1".into()),
                ("B_2".into(), "x=y".into()),
                ("C".into(), String::new())
            ]
        );
        for bad in ["A", "1A=x", "A;B=x", "=x", "A B=1"] {
            assert_eq!(
                parse_user_env(&[bad.into()]),
                Err(EnvError::BadUserEnv(bad.into()))
            );
        }
    }

    #[test]
    fn secure_uuid_is_32_hex() {
        let a = secure_uuid().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, secure_uuid().unwrap());
    }
}
