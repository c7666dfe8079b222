//! Value parsers for the command line: sizes, durations, counts, fingerprints, addresses.

use std::net::SocketAddr;
use std::time::Duration;

/// Parses a size like `1500`, `128K`, `64KiB`, `1.5M`, `2G` (K, M, G, T are powers of 1024,
/// as in iperf3).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix(['B', 'b']))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("'{s}' is not a size; try 1500, 128K, 64M or 2G")),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size; try 1500, 128K, 64M or 2G"))?;
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(format!("'{s}' is not a size: negative or not finite"));
    }
    if bytes > MAX_SIZE as f64 {
        return Err(format!("'{s}' is too large: at most 1024T (1 PiB)"));
    }
    Ok(bytes.round() as u64)
}

/// The largest size any flag takes (1 PiB): more than any file, disk or test, and far from
/// where byte counts could overflow.
pub const MAX_SIZE: u64 = 1 << 50;

/// The longest duration any flag takes: one year (humantime's `1y`, 365.25 days). Longer
/// means "never" in practice, and bounding it keeps every deadline (now + duration) far from
/// overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// A relay keepalive: whole seconds from 1 s to 1 h (the wire carries seconds).
pub fn parse_relay_keepalive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) || d.subsec_nanos() != 0 {
        return Err(format!(
            "'{s}': give whole seconds from 1s to 1h (listeners are told it in seconds)"
        ));
    }
    Ok(d)
}

/// A count of at least 1.
pub fn parse_positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(format!("'{s}' is zero: that would refuse everything")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a count (1, 2, ...)")),
    }
}

/// Like [`parse_size`], but zero is refused.
pub fn parse_positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("'{s}' is zero; give a positive size such as 128K")),
        n => Ok(n),
    }
}

/// Parses a duration like `500ms`, `2m`, `1h 30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let too_long = || format!("'{s}' is too long: at most 1 year (1y)");
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return Err(format!("'{s}' is not a duration: negative or not a number"));
        }
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(too_long());
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    match humantime::parse_duration(s) {
        Ok(d) if d > MAX_DURATION => Err(too_long()),
        Ok(d) => Ok(d),
        // humantime refuses what overflows its u64 seconds: too long as well.
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(e) => Err(format!(
            "'{s}' is not a duration ({e}); try 500ms, 10s or 2m"
        )),
    }
}

/// Like [`parse_duration`], but zero is refused (it would end everything at once).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "'{s}' is zero; give a positive duration such as 500ms"
        )),
        d => Ok(d),
    }
}

/// Checks a key fingerprint as `msock listen --show-key` prints it: `SHA256:` and the
/// unpadded base64 of 32 bytes.
pub fn parse_fingerprint(s: &str) -> Result<String, String> {
    use base64::Engine;
    let digest = s.strip_prefix("SHA256:").ok_or_else(|| {
        format!("'{s}' is not a key fingerprint: it must start with SHA256: (copy it whole from `msock listen --show-key`)")
    })?;
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(digest) {
        Ok(d) if d.len() == 32 => Ok(s.to_owned()),
        _ => Err(format!("'{s}' is not a key fingerprint: after SHA256: come 43 base64 characters (copy it whole from `msock listen --show-key`)")),
    }
}

/// A port to connect to: 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{s}' is not a port number (1-65535)")),
    }
}

/// Joins HOST and PORT given as two arguments (as nc takes them) into the one-argument form:
/// `HOST:PORT`, `[V6]:PORT` for an IPv6 address (bracketed or not), `NAME@RELAY:PORT`. Err:
/// HOST has a port already.
pub fn join_host_port(host: &str, port: u16) -> Result<String, String> {
    let both =
        || format!("'{host}' has a port already: give HOST:PORT or HOST PORT ({port}), not both");
    let (name, relay) = match host.split_once('@') {
        Some((n, r)) => (Some(n), r),
        None => (None, host),
    };
    let relay = if relay.starts_with('[') && relay.ends_with(']') {
        relay.to_owned()
    } else if relay.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{relay}]")
    } else if relay.contains(':') || relay.is_empty() {
        // HOST:PORT or [V6]:PORT already, or something no port can fix.
        return Err(if relay.is_empty() {
            format!("'{host}' has no host before the port {port}")
        } else {
            both()
        });
    } else {
        relay.to_owned()
    };
    Ok(match name {
        Some(n) => format!("{n}@{relay}:{port}"),
        None => format!("{relay}:{port}"),
    })
}

/// Parses a listen address: `PORT`, `ADDR:PORT`, `[V6]:PORT`. Returns the host part (None =
/// all addresses) and the port.
pub fn parse_listen_addr(s: &str) -> Result<(Option<String>, u16), String> {
    let port_err = |p: &str| format!("'{p}' is not a port number (0-65535)");
    if let Ok(port) = s.parse::<u16>() {
        return Ok((None, port));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((Some(sa.ip().to_string()), sa.port()));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not [ADDR:]PORT"))?;
    let port = port.parse::<u16>().map_err(|_| port_err(port))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Ok((None, port));
    }
    Ok((Some(host.to_owned()), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert_eq!(parse_duration("1y"), Ok(MAX_DURATION));
        for huge in ["1e30", "inf", "1e19", "300000000000y", "366d", "31557601"] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("at most 1 year"), "{huge}: {e}");
        }
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("128K"), Ok(128 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1K").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_size("1024T"), Ok(MAX_SIZE));
        assert!(parse_size("inf").is_err());
        for huge in ["1025T", "1e30"] {
            let e = parse_size(huge).unwrap_err();
            assert!(e.contains("at most 1024T"), "{huge}: {e}");
        }
    }

    #[test]
    fn host_and_port_apart() {
        assert_eq!(join_host_port("127.0.0.1", 9020).unwrap(), "127.0.0.1:9020");
        assert_eq!(join_host_port("::1", 9020).unwrap(), "[::1]:9020");
        assert_eq!(join_host_port("[::1]", 9020).unwrap(), "[::1]:9020");
        assert_eq!(join_host_port("Example.net", 1).unwrap(), "Example.net:1");
        assert_eq!(join_host_port("n@relay", 7).unwrap(), "n@relay:7");
        assert_eq!(join_host_port("n@::1", 7).unwrap(), "n@[::1]:7");
        for bad in ["host:9000", "[::1]:9000", "n@relay:1", "", "n@"] {
            assert!(join_host_port(bad, 9020).is_err(), "{bad}");
        }
        assert!(join_host_port("host:9000", 9020)
            .unwrap_err()
            .contains("not both"));
        assert_eq!(parse_port("9020"), Ok(9020));
        assert!(parse_port("0").is_err() && parse_port("65536").is_err());
    }

    #[test]
    fn listen_addrs() {
        assert_eq!(parse_listen_addr("9000"), Ok((None, 9000)));
        assert_eq!(parse_listen_addr(":9000"), Ok((None, 9000)));
        assert_eq!(
            parse_listen_addr("127.0.0.1:0"),
            Ok((Some("127.0.0.1".into()), 0))
        );
        assert_eq!(parse_listen_addr("[::1]:80"), Ok((Some("::1".into()), 80)));
        assert_eq!(
            parse_listen_addr("localhost:80"),
            Ok((Some("localhost".into()), 80))
        );
        assert!(parse_listen_addr("localhost").is_err());
        assert!(parse_listen_addr("x:99999").is_err());
    }
}
