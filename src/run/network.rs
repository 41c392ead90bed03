//! The network policy of a sandbox: the host's network, none (loopback only), or only the
//! names on an allow list, reached through the session's proxy. Kept in the session as its
//! default (`fs_run_config`). Parsing, matching and the proxy's request line are pure.

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension};

/// How the command reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// The host's network, as it is.
    #[default]
    Host,
    /// A network namespace with loopback only.
    None,
    /// Loopback only, and an HTTP(S) proxy that passes the allowed names.
    Allow,
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        match s {
            "host" => Ok(Network::Host),
            "none" => Ok(Network::None),
            "allow" => Ok(Network::Allow),
            _ => Err(format!(
                "unknown network policy {s:?}; give host, none or allow"
            )),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Host => "host",
            Network::None => "none",
            Network::Allow => "allow",
        })
    }
}

/// Whether `host` is on the allow list: a name equal to an entry (ASCII case ignored, a
/// trailing dot too), or a subdomain of an entry written `*.name`.
pub fn allowed(host: &str, list: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.iter().any(|entry| {
        let entry = entry.trim_end_matches('.').to_ascii_lowercase();
        match entry.strip_prefix("*.") {
            Some(parent) => host.len() > parent.len() + 1 && host.ends_with(&format!(".{parent}")),
            None => host == entry,
        }
    })
}

/// Checks an `--allow-domain` entry: a host name or address, or `*.` and a name.
pub fn check_domain(entry: &str) -> Result<(), String> {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "--allow-domain {entry:?} is not a host name (give e.g. github.com or *.github.com)"
        )),
    }
}

/// The policy a session keeps for its runs, if any was set.
pub fn session_default(conn: &Connection) -> rusqlite::Result<Option<(Network, Vec<String>)>> {
    let get = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row(
            "SELECT value FROM fs_run_config WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()
    };
    let Some(network) = get("network")?.and_then(|n| n.parse().ok()) else {
        return Ok(None);
    };
    let domains = get("allow_domains")?
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default();
    Ok(Some((network, domains)))
}

/// Keeps `network` and `domains` as the session's policy for later runs.
pub fn set_session_default(
    conn: &Connection,
    network: Network,
    domains: &[String],
) -> rusqlite::Result<()> {
    let domains = serde_json::to_string(domains).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT OR REPLACE INTO fs_run_config (key, value) VALUES ('network', ?1), \
         ('allow_domains', ?2)",
        [network.to_string(), domains],
    )?;
    Ok(())
}

/// What a client asked the proxy for, from its request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: String,
    pub host: String,
    pub port: u16,
    /// For a plain HTTP request, the path to send the server (origin form); None for a
    /// CONNECT tunnel.
    pub path: Option<String>,
    pub version: String,
}

/// Splits `host:port` (an IPv6 address in brackets), with `default` if no port is given.
fn host_port(s: &str, default: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default?,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Parses a proxy request line: `CONNECT host:port HTTP/1.1`, or a plain request with an
/// absolute `http://` target.
pub fn parse_request_line(line: &str) -> Option<Target> {
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/") {
        return None;
    }
    if method == "CONNECT" {
        let (host, port) = host_port(target, None)?;
        return Some(Target {
            method: method.into(),
            host,
            port,
            path: None,
            version: version.into(),
        });
    }
    let rest = target.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = host_port(authority, Some(80))?;
    Some(Target {
        method: method.into(),
        host,
        port,
        path: Some(path.into()),
        version: version.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_as_subdomains_of_a_wildcard() {
        let list = vec!["github.com".to_string(), "*.crates.io".to_string()];
        assert!(allowed("github.com", &list));
        assert!(allowed("GitHub.com.", &list));
        assert!(!allowed("api.github.com", &list));
        assert!(allowed("static.crates.io", &list));
        assert!(allowed("a.b.crates.io", &list));
        assert!(!allowed("crates.io", &list));
        assert!(!allowed("evilcrates.io", &list));
        assert!(!allowed("github.com.evil.net", &list));
        assert!(!allowed("anything", &[]));
    }

    #[test]
    fn request_lines_give_the_target() {
        assert_eq!(
            parse_request_line("CONNECT example.com:443 HTTP/1.1"),
            Some(Target {
                method: "CONNECT".into(),
                host: "example.com".into(),
                port: 443,
                path: None,
                version: "HTTP/1.1".into()
            })
        );
        let t = parse_request_line("GET http://127.0.0.2:8080/a/b?c=d HTTP/1.1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_deref()),
            ("127.0.0.2", 8080, Some("/a/b?c=d"))
        );
        let t = parse_request_line("GET http://example.com HTTP/1.0").unwrap();
        assert_eq!((t.port, t.path.as_deref()), (80, Some("/")));
        let t = parse_request_line("CONNECT [::1]:8443 HTTP/1.1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        for bad in [
            "GET /relative HTTP/1.1",
            "CONNECT example.com HTTP/1.1",
            "GET https://x/ HTTP/1.1",
            "garbage",
            "CONNECT a:1 HTTP/1.1 extra",
        ] {
            assert_eq!(parse_request_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn policies_and_domains_are_checked() {
        assert_eq!("none".parse::<Network>(), Ok(Network::None));
        assert!("open".parse::<Network>().is_err());
        assert!(check_domain("*.github.com").is_ok());
        assert!(check_domain("127.0.0.2").is_ok());
        assert!(check_domain("bad name").is_err());
        assert!(check_domain("*.").is_err());
    }
}
