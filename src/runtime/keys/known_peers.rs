//! `known_peers`: the listener keys a client has met, pinned the way ssh pins host keys.
//!
//! Each line is `PATTERNS FINGERPRINT`, PATTERNS a comma-separated list of host names and
//! addresses that share the key:
//! - `HOST` (a name, an address, or `NAME@RELAY`): the key of every listener at HOST,
//!   whatever its port. A listener's key belongs to its machine and user, not to a port
//!   (every `msock listen` of one user shares `listener.key`), so this is what is pinned:
//!   `listen 0` on a new port each time needs no new line.
//! - `[HOST]:PORT`: the key of the listener at that port only; it takes precedence over
//!   `HOST` (for a second listener on one host with a key of its own, e.g. another user's).
//!   Written by hand, or by the migration of an old file whose ports disagreed.
//!
//! A destination is recognised by its host name, else by the address the connection went to
//! (then the name joins that line: `localhost` after `127.0.0.1` is the same key). Lines that
//! are blank, start with `#`, or cannot be read are kept as they are.
//!
//! Files written before this format (one `HOST:PORT FINGERPRINT` per destination, no header
//! line) are rewritten on first use: each host's lines become one `HOST` line when they agree
//! on the key, else stay `[HOST]:PORT` lines.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{io_err, KeyError};

/// The first line of a file in this format.
const HEADER: &str = "# msock known_peers v2: HOST[,HOST...] FINGERPRINT (HOST or [HOST]:PORT)";

/// One host pattern of a line: a host (lower case, no brackets), for every port or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The host name, address or `NAME@RELAY`.
    pub host: String,
    /// The one port it is for; None for every port.
    pub port: Option<u16>,
}

impl Pattern {
    /// Reads a pattern as written in the file (`HOST` or `[HOST]:PORT`; an old file's
    /// `HOST:PORT`).
    fn parse(s: &str) -> Option<Pattern> {
        if s.is_empty() {
            return None;
        }
        let (host, port) = split_dest(s);
        (!host.is_empty()).then_some(Pattern { host, port })
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && (self.port.is_none() || self.port == port)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            None => f.write_str(&self.host),
            Some(p) => write!(f, "[{}]:{p}", self.host),
        }
    }
}

/// Splits a destination (`HOST:PORT`, `[V6]:PORT`, `NAME@RELAY:PORT`, or a bare `HOST` or
/// IPv6 address) into its host (lower case, brackets removed) and port.
pub(crate) fn split_dest(s: &str) -> (String, Option<u16>) {
    let host = |h: &str| h.replace(['[', ']'], "").to_ascii_lowercase();
    if let Some((h, p)) = s.rsplit_once(':') {
        if let Ok(port) = p.parse::<u16>() {
            if h.ends_with(']') || !h.contains(':') {
                return (host(h), Some(port));
            }
        }
    }
    (host(s), None)
}

/// One pinned key and the hosts it is pinned for.
#[derive(Debug, Clone)]
struct Entry {
    patterns: Vec<Pattern>,
    fingerprint: String,
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            return None;
        }
        let mut it = t.split_whitespace();
        let (pats, fp) = (it.next()?, it.next()?);
        let patterns: Option<Vec<Pattern>> = pats.split(',').map(Pattern::parse).collect();
        Some(Entry {
            patterns: patterns?,
            fingerprint: fp.to_owned(),
        })
    }

    fn names(&self) -> String {
        let names: Vec<String> = self.patterns.iter().map(|p| p.to_string()).collect();
        names.join(",")
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.names(), self.fingerprint)
    }
}

/// A line of the file: an entry, or anything else (kept as it is).
#[derive(Debug, Clone)]
enum Line {
    Entry(Entry),
    Other(String),
}

/// The file's lines, in order.
#[derive(Debug, Default)]
struct Table {
    lines: Vec<Line>,
}

/// Where a key was found: the file's line (1-based) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The line number.
    pub line: usize,
    /// The line's host patterns, as written.
    pub names: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// True if it was found by the address the connection went to, not by the name given.
    pub by_address: bool,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "known_peers line {} ({}", self.line, self.names)?;
        if self.by_address {
            f.write_str(", by the address it resolved to")?;
        }
        f.write_str(")")
    }
}

/// What a lookup found.
enum Lookup {
    /// An entry for the host with this key.
    Same(usize, bool),
    /// Entries for the host, none with this key: the first one.
    Different(usize),
    /// Nothing for the host.
    None,
}

impl Table {
    fn parse(text: &str) -> Table {
        let lines = text
            .lines()
            .map(|l| match Entry::parse(l) {
                Some(e) => Line::Entry(e),
                None => Line::Other(l.to_owned()),
            })
            .collect();
        Table { lines }
    }

    fn is_current(text: &str) -> bool {
        text.lines().next() == Some(HEADER)
    }

    /// The old format's lines (all `HOST:PORT`), each host's collapsed to one `HOST` line
    /// where its ports agree on the key.
    fn migrate(self) -> Table {
        let mut by_host: BTreeMap<String, Vec<(Pattern, String)>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut lines = vec![Line::Other(HEADER.to_owned())];
        for line in self.lines {
            match line {
                Line::Entry(e) => {
                    for p in e.patterns {
                        if !by_host.contains_key(&p.host) {
                            order.push(p.host.clone());
                        }
                        let list = by_host.entry(p.host.clone()).or_default();
                        if !list.iter().any(|(q, fp)| *q == p && *fp == e.fingerprint) {
                            list.push((p, e.fingerprint.clone()));
                        }
                    }
                }
                Line::Other(s) if s.trim().is_empty() => {}
                other => lines.push(other),
            }
        }
        for host in order {
            let list = &by_host[&host];
            let fp = &list[0].1;
            if list.iter().all(|(_, f)| f == fp) {
                lines.push(Line::Entry(Entry {
                    patterns: vec![Pattern { host, port: None }],
                    fingerprint: fp.clone(),
                }));
            } else {
                for (p, f) in list {
                    lines.push(Line::Entry(Entry {
                        patterns: vec![p.clone()],
                        fingerprint: f.clone(),
                    }));
                }
            }
        }
        Table { lines }
    }

    fn entries(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.lines.iter().enumerate().filter_map(|(i, l)| match l {
            Line::Entry(e) => Some((i, e)),
            Line::Other(_) => None,
        })
    }

    /// Looks `host` (at `port`) up: an entry pinned for that port first, else one for the
    /// whole host.
    fn lookup(&self, host: &str, port: Option<u16>, fp: &str) -> Lookup {
        for specific in [true, false] {
            let hits: Vec<(usize, &Entry)> = self
                .entries()
                .filter(|(_, e)| {
                    e.patterns
                        .iter()
                        .any(|p| p.matches(host, port) && p.port.is_some() == specific)
                })
                .collect();
            if let Some((i, _)) = hits.iter().find(|(_, e)| e.fingerprint == fp) {
                return Lookup::Same(*i, specific);
            }
            if let Some((i, _)) = hits.first() {
                return Lookup::Different(*i);
            }
        }
        Lookup::None
    }

    fn entry_mut(&mut self, i: usize) -> &mut Entry {
        match &mut self.lines[i] {
            Line::Entry(e) => e,
            Line::Other(_) => unreachable!("lookup returns entries only"),
        }
    }

    fn found(&self, i: usize, by_address: bool) -> Found {
        let Line::Entry(e) = &self.lines[i] else {
            unreachable!("lookup returns entries only")
        };
        Found {
            line: i + 1,
            names: e.names(),
            fingerprint: e.fingerprint.clone(),
            by_address,
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            match l {
                Line::Entry(e) => s.push_str(&e.to_string()),
                Line::Other(o) => s.push_str(o),
            }
            s.push('\n');
        }
        s
    }
}

/// The file, locked against other msock processes while it is read and changed.
struct Locked {
    path: PathBuf,
    table: Table,
    dirty: bool,
    _lock: fs::File,
}

impl Locked {
    /// Locks and reads the file at `path` (missing: empty), migrating an old one.
    fn open(path: PathBuf, create_dir: bool) -> Result<Locked, KeyError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        if create_dir {
            fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        }
        let lock_path = dir.join(".known_peers.lock");
        let lock = match fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
        {
            Ok(f) => f,
            // No directory (nothing pinned yet, and nothing to pin): nothing to lock.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create_dir => {
                return Ok(Locked {
                    path,
                    table: Table::default(),
                    dirty: false,
                    _lock: fs::File::open("/dev/null")
                        .map_err(io_err("cannot open /dev/null".into()))?,
                })
            }
            Err(e) => return Err(io_err(format!("cannot lock {}", lock_path.display()))(e)),
        };
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
        };
        let (table, dirty) = if text.trim().is_empty() {
            let header = Line::Other(HEADER.to_owned());
            (
                Table {
                    lines: vec![header],
                },
                false,
            )
        } else if Table::is_current(&text) {
            (Table::parse(&text), false)
        } else {
            (Table::parse(&text).migrate(), true)
        };
        Ok(Locked {
            path,
            table,
            dirty,
            _lock: lock,
        })
    }

    /// Writes the file back if it changed (a new file, then renamed over the old one).
    fn save(&mut self) -> Result<(), KeyError> {
        if !self.dirty {
            return Ok(());
        }
        let err = || format!("cannot write {}", self.path.display());
        let tmp = self
            .path
            .with_file_name(format!(".known_peers.{}", std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(err()))?;
        f.write_all(self.table.text().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(err()))?;
        fs::rename(&tmp, &self.path).map_err(io_err(err()))?;
        self.dirty = false;
        Ok(())
    }
}

/// How a listener's key compared with what the client knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinCheck {
    /// It matches `--peer-key`.
    Given,
    /// It matches this pinned entry.
    Known(Found),
    /// First contact: pinned now, on this line.
    PinnedNow(Found),
}

impl fmt::Display for PinCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinCheck::Given => f.write_str("matches --peer-key"),
            PinCheck::Known(found) => write!(f, "matches {found}"),
            PinCheck::PinnedNow(found) => write!(f, "first contact: pinned now as {found}"),
        }
    }
}

/// Checks the key `got` (a fingerprint) of the listener met at `dest`, whose connection went
/// to `addr` (None through a relay: the address is the relay's), against `path`; pins it on
/// first contact.
pub(crate) fn check(
    path: PathBuf,
    dest: &str,
    addr: Option<IpAddr>,
    got: &str,
) -> Result<PinCheck, KeyError> {
    let (host, port) = split_dest(dest);
    let addr = addr
        .map(|a| a.to_string().to_ascii_lowercase())
        .filter(|a| *a != host);
    let mut file = Locked::open(path, true)?;
    let by_name = file.table.lookup(&host, port, got);
    let by_addr = addr
        .as_deref()
        .map(|a| (a, file.table.lookup(a, port, got)));
    let changed = |table: &Table, i: usize, by_address: bool, path: &Path| {
        KeyError::Changed(Box::new(super::Changed {
            dest: dest.to_owned(),
            forget: match (by_address, &addr) {
                (true, Some(a)) => a.clone(),
                _ => host.clone(),
            },
            found: table.found(i, by_address),
            got: got.to_owned(),
            file: path.to_owned(),
            pin_port: format!("[{host}]:{}", port.map_or("PORT".into(), |p| p.to_string())),
        }))
    };
    let result = match (by_name, by_addr) {
        (Lookup::Same(i, specific), by_addr) => {
            // The address joins the name's line, as ssh's CheckHostIP records it.
            if let (Some((a, Lookup::None)), false) = (by_addr, specific) {
                let e = file.table.entry_mut(i);
                e.patterns.push(Pattern {
                    host: a.to_owned(),
                    port: None,
                });
                file.dirty = true;
            }
            PinCheck::Known(file.table.found(i, false))
        }
        (Lookup::Different(i), _) => {
            let e = changed(&file.table, i, false, &file.path);
            file.save()?;
            return Err(e);
        }
        (Lookup::None, Some((_, Lookup::Same(i, specific)))) => {
            let found = file.table.found(i, true);
            if !specific {
                file.table.entry_mut(i).patterns.push(Pattern {
                    host: host.clone(),
                    port: None,
                });
                file.dirty = true;
            }
            PinCheck::Known(found)
        }
        (Lookup::None, Some((_, Lookup::Different(i)))) => {
            let e = changed(&file.table, i, true, &file.path);
            file.save()?;
            return Err(e);
        }
        (Lookup::None, _) => {
            let mut patterns = vec![Pattern {
                host: host.clone(),
                port: None,
            }];
            patterns.extend(addr.map(|host| Pattern { host, port: None }));
            file.table.lines.push(Line::Entry(Entry {
                patterns,
                fingerprint: got.to_owned(),
            }));
            file.dirty = true;
            let last = file.table.lines.len() - 1;
            PinCheck::PinnedNow(file.table.found(last, false))
        }
    };
    file.save()?;
    Ok(result)
}

/// Removes from `path` every line that pins a key for `dest` (`HOST`, `HOST:PORT`,
/// `[V6]:PORT` or `NAME@RELAY`): a `HOST` destination removes every line naming HOST, a
/// `HOST:PORT` one the lines a connection to it would use. Returns the lines removed.
pub(crate) fn forget(path: PathBuf, dest: &str) -> Result<Vec<String>, KeyError> {
    let (host, port) = split_dest(dest);
    let mut file = Locked::open(path, false)?;
    let mut removed = Vec::new();
    file.table.lines.retain(|l| match l {
        Line::Entry(e)
            if e.patterns.iter().any(|p| {
                p.host == host && (port.is_none() || p.port.is_none() || p.port == port)
            }) =>
        {
            removed.push(e.to_string());
            false
        }
        _ => true,
    });
    if !removed.is_empty() {
        file.dirty = true;
    }
    file.save()?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "SHA256:aaaa";
    const B: &str = "SHA256:bbbb";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn destinations_split() {
        assert_eq!(
            split_dest("Example.net:9000"),
            ("example.net".into(), Some(9000))
        );
        assert_eq!(split_dest("[::1]:9000"), ("::1".into(), Some(9000)));
        assert_eq!(split_dest("::1"), ("::1".into(), None));
        assert_eq!(split_dest("[::1]"), ("::1".into(), None));
        assert_eq!(split_dest("n@relay:7480"), ("n@relay".into(), Some(7480)));
        assert_eq!(split_dest("host"), ("host".into(), None));
    }

    #[test]
    fn one_key_per_host_names_and_addresses_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_peers");
        let p = || path.clone();
        let r = check(p(), "127.0.0.1:4000", ip("127.0.0.1"), A).unwrap();
        assert!(
            matches!(r, PinCheck::PinnedNow(ref f) if f.line == 2),
            "{r:?}"
        );
        // Another port of the same host: the same key, no new line.
        let r = check(p(), "127.0.0.1:4001", ip("127.0.0.1"), A).unwrap();
        assert!(matches!(r, PinCheck::Known(ref f) if f.line == 2), "{r:?}");
        // A name that resolved to the pinned address: recognised, and it joins the line.
        let r = check(p(), "LocalHost:4002", ip("127.0.0.1"), A).unwrap();
        assert!(matches!(r, PinCheck::Known(ref f) if f.by_address), "{r:?}");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{HEADER}\n127.0.0.1,localhost {A}\n"));
        // A different key by name or by address is refused, naming the line.
        let e = check(p(), "localhost:5", ip("127.0.0.1"), B).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = check(p(), "other:5", ip("127.0.0.1"), B).unwrap_err();
        assert!(matches!(e, KeyError::Changed(ref c) if c.found.by_address));
        // A port pinned on its own takes precedence.
        fs::write(&path, format!("{text}[127.0.0.1]:7 {B}\n")).unwrap();
        assert!(check(p(), "127.0.0.1:7", ip("127.0.0.1"), B).is_ok());
        assert!(check(p(), "127.0.0.1:7", ip("127.0.0.1"), A).is_err());
        // Forgetting a host removes its lines.
        let gone = forget(p(), "localhost").unwrap();
        assert_eq!(gone, vec![format!("127.0.0.1,localhost {A}")]);
        assert!(forget(p(), "localhost").unwrap().is_empty());
    }

    #[test]
    fn old_files_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_peers");
        let old = format!(
            "127.0.0.1:1 {A}\n127.0.0.1:2 {A}\n[::1]:3 {A}\nh:1 {A}\nh:2 {B}\nn@r:7480 {B}\n"
        );
        fs::write(&path, old).unwrap();
        let r = check(path.clone(), "127.0.0.1:99", ip("127.0.0.1"), A).unwrap();
        assert!(matches!(r, PinCheck::Known(_)), "{r:?}");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{HEADER}\n127.0.0.1 {A}\n::1 {A}\n[h]:1 {A}\n[h]:2 {B}\nn@r {B}\n")
        );
    }
}
