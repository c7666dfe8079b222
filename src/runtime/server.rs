//! Server side: the listening sockets of a listener.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

use super::client::{resolve, ConnectError, Family};
use super::conn::bind_listener;

/// Why a listener could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The listening address did not resolve (user or DNS).
    #[error(transparent)]
    Resolve(#[from] ConnectError),
    /// The address cannot be listened on (in use, not ours): the user's or the system's.
    #[error("cannot listen on {0}: {1}{hint}", hint = if .1.kind() == io::ErrorKind::AddrInUse {
        " (another program uses this port; pick another)"
    } else {
        ""
    })]
    Bind(SocketAddr, io::Error),
}

/// Binds every listening socket `[host:]port` asks for (without a host, the wildcard
/// address of each allowed family). Fails only if none could be bound.
pub async fn bind_all(
    host: Option<&str>,
    port: u16,
    fam: Family,
) -> Result<Vec<TcpListener>, BindError> {
    let addrs: Vec<SocketAddr> = match host {
        Some(h) => resolve(&format!("{}:{port}", bracket(h)), fam).await?,
        None => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            match fam {
                Family::V4 => vec![v4],
                Family::V6 => vec![v6],
                Family::Any => vec![v4, v6],
            }
        }
    };
    let mut out = Vec::new();
    let mut first_err = None;
    let mut port = port;
    for (i, mut a) in addrs.into_iter().enumerate() {
        // With port 0, every socket shares the port the first one got.
        a.set_port(port);
        match bind_listener(a) {
            Ok(l) => {
                if i == 0 {
                    port = l.local_addr().map_err(|e| BindError::Bind(a, e))?.port();
                }
                out.push(l);
            }
            Err(e) => {
                tracing::debug!("cannot listen on {a}: {e}");
                first_err.get_or_insert((a, e));
            }
        }
    }
    match (out.is_empty(), first_err) {
        (true, Some((a, e))) => Err(BindError::Bind(a, e)),
        _ => Ok(out),
    }
}

fn bracket(h: &str) -> String {
    if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_owned()
    }
}
