//! The target URL: parsing, resolution and the loopback-only safety rule.

use std::net::{IpAddr, SocketAddr};

use http::Uri;

/// A resolved plain-HTTP target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address connections go to (the first one the host resolves to).
    pub addr: SocketAddr,
    /// `Host` header value (`host[:port]` as written in the URL).
    pub authority: String,
    /// Request target (`/path?query`).
    pub path_and_query: String,
}

/// Why a URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a valid absolute `http://` URL.
    #[error("invalid URL {url:?}: {why}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The host does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host name.
        host: String,
        /// Resolver error.
        source: std::io::Error,
    },
    /// The host resolves to a non-loopback address and `--allow-remote` was not given.
    #[error(
        "refusing to send load to {addr} (not loopback); load goes to 127.0.0.0/8 and ::1 only unless --allow-remote is given"
    )]
    Remote {
        /// The offending address.
        addr: IpAddr,
    },
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Target {
    /// Parses and resolves `url`; every resolved address must be loopback unless `allow_remote`.
    ///
    /// # Errors
    /// [`TargetError`] for a malformed or non-http URL, a failed lookup or a refused remote host.
    pub async fn resolve(url: &str, allow_remote: bool) -> Result<Self, TargetError> {
        let invalid = |why: &str| TargetError::Invalid {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "https is not supported; point loadgen at the plain-HTTP listener",
                ));
            }
            _ => return Err(invalid("expected http://host:port/path")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|source| TargetError::Resolve {
                    host: host.clone(),
                    source,
                })?
                .collect(),
        };
        if !allow_remote && let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            return Err(TargetError::Remote { addr: bad.ip() });
        }
        let addr = *addrs
            .first()
            .ok_or_else(|| invalid("host resolves to no address"))?;
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self {
            addr,
            authority: authority.as_str().to_owned(),
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_only_unless_allowed() {
        let t = Target::resolve("http://127.0.0.1:9/webhook?x=1", false)
            .await
            .unwrap();
        assert_eq!(t.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(t.path_and_query, "/webhook?x=1");
        assert!(Target::resolve("http://[::1]:9/", false).await.is_ok());
        assert!(Target::resolve("http://127.8.9.10/", false).await.is_ok());
        assert!(matches!(
            Target::resolve("http://10.0.0.1/", false).await,
            Err(TargetError::Remote { .. })
        ));
        assert!(matches!(
            Target::resolve("http://[::ffff:8.8.8.8]/", false).await,
            Err(TargetError::Remote { .. })
        ));
        assert!(Target::resolve("http://10.0.0.1/", true).await.is_ok());
        assert!(matches!(
            Target::resolve("https://127.0.0.1/", false).await,
            Err(TargetError::Invalid { .. })
        ));
        assert!(matches!(
            Target::resolve("not a url", false).await,
            Err(TargetError::Invalid { .. })
        ));
    }
}
