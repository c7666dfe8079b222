//! The sending end of a file transfer: offers the manifest, decides per file what to send
//! (skip, resume, start over) from what the receiver holds, streams the bytes from a reader
//! thread that hashes them, and collects the receiver's verdicts.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::mpsc;

use super::manifest::{Manifest, Source};
use super::owner;
use super::progress::Progress;
use super::wire::{
    self, tag, Check, Checked, Done, End, Held, Kind, Msg, Proof, Start, Status, Verdict, WireError,
};
use crate::proto::text::escape;
use crate::runtime::channel_io::{ChannelReader, ChannelWriter};

/// What happened to one entry.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// Its name on the receiver's side (relative path).
    pub path: String,
    /// File, folder or stream.
    pub kind: Kind,
    /// Its size (for a stream: what was read).
    pub size: u64,
    /// Bytes sent in this run.
    pub sent: u64,
    /// Where sending started: bytes the receiver already held and verified.
    pub resumed_from: u64,
    /// The receiver already had an identical copy: nothing was sent.
    pub skipped: bool,
    /// BLAKE3 (hex) of the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// The receiver verified and saved it (or already had it).
    pub ok: bool,
    /// What went wrong, if not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of a transfer that ran to its end (some files may still have failed).
#[derive(Debug)]
pub struct Sent {
    /// Per entry.
    pub files: Vec<FileReport>,
    /// The receiver's closing count.
    pub done: Done,
}

/// Why a transfer failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver refused the offer.
    #[error("the receiver refused the transfer: {0}")]
    Refused(String),
    /// Files exist on the receiver and differ; nothing was sent.
    #[error("{0}")]
    Conflict(String),
    /// Reading our own files failed.
    #[error("{0}")]
    Local(String),
    /// The receiver broke the protocol or left.
    #[error("{0}")]
    Peer(#[from] WireError),
}

/// What the reader thread hands over.
enum Piece {
    Start(Start),
    Data(Bytes),
    End(End),
    Failed(String),
}

/// One file (or stdin) for the reader thread.
struct Job {
    index: usize,
    source: Source,
    /// The file's size as offered (None for stdin).
    size: Option<u64>,
    /// Where sending starts: bytes the receiver holds and proved ours (0: from the start).
    offset: u64,
    /// The hash state of our first `offset` bytes.
    hasher: blake3::Hasher,
}

/// What we proved of one held entry: the hash state of our first `partial` bytes, and the
/// hash of our whole file.
#[derive(Default)]
struct Proven {
    prefix: Option<blake3::Hasher>,
    whole: Option<String>,
}

/// Checks that an offer fits the protocol's limits, before anything is sent: Err says so, as
/// the sender's own limit (not the receiver's).
pub fn check_limits(offer: &wire::Offer) -> Result<(), String> {
    let n = offer.entries.len();
    if n > wire::MAX_ENTRIES {
        return Err(format!(
            "{n} files and folders to send; msock sends at most {} in one run: send the \
             folders one by one",
            wire::MAX_ENTRIES
        ));
    }
    // The encoded entries, at most: the path (a character JSON escapes takes up to 6 bytes)
    // and 160 bytes of fields, the token included.
    let bytes: usize = offer
        .entries
        .iter()
        .map(|e| {
            let escaped = e
                .path
                .bytes()
                .filter(|&b| b < 0x20 || b == b'"' || b == b'\\');
            e.path.len() + 5 * escaped.count() + 160
        })
        .sum();
    if bytes > wire::MAX_OFFER_BYTES {
        return Err(format!(
            "the list of files to send takes {bytes} bytes (their names); msock sends at most \
             {} bytes of names in one run: send the folders one by one",
            wire::MAX_OFFER_BYTES
        ));
    }
    Ok(())
}

/// Chunk size read from files.
const CHUNK: usize = 256 << 10;

/// Sends the manifest's entries over the session; `progress` follows the bytes. On failure
/// the receiver is told why (or, if it refused, our side is closed).
pub async fn send(
    w: &mut ChannelWriter,
    r: &mut ChannelReader,
    m: Manifest,
    progress: &Progress,
) -> Result<Sent, SendError> {
    let res = send_inner(w, r, m, progress).await;
    match &res {
        Err(SendError::Refused(_)) => w.close(),
        Err(e) => w.abort(format!("the sender stopped: {e}")).await,
        Ok(_) => {}
    }
    res
}

async fn send_inner(
    w: &mut ChannelWriter,
    r: &mut ChannelReader,
    m: Manifest,
    progress: &Progress,
) -> Result<Sent, SendError> {
    check_limits(&m.offer).map_err(SendError::Local)?;
    // Off the session's task: a million entries take a while.
    let (m, no_secret) = tokio::task::spawn_blocking(move || {
        let mut m = m;
        let (secret, no_secret) = owner::sender_secret();
        for e in m.offer.entries.iter_mut().filter(|e| e.kind != Kind::Dir) {
            e.token = Some(owner::hex(&owner::token(&secret, &e.path)));
        }
        (m, no_secret)
    })
    .await
    .map_err(|e| SendError::Local(format!("preparing the offer: {e}")))?;
    if let Some(why) = no_secret {
        progress.println(&format!(
            "no transfer secret ({why}): an interrupted transfer cannot be resumed by a later run"
        ));
    }
    for msg in wire::list_messages(
        tag::OFFER,
        &serde_json::Map::new(),
        "entries",
        &m.offer.entries,
    ) {
        send_msg(w, msg).await?;
    }
    let n = m.offer.entries.len();
    let status: Status = wire::recv_list(r, tag::STATUS, n, wire::MAX_OFFER_BYTES)
        .await
        .map_err(limit_is_protocol)?;
    if let Some(why) = status.refused {
        return Err(SendError::Refused(escape(&why)));
    }
    let mut last = None;
    for h in &status.held {
        let fits = m
            .offer
            .entries
            .get(h.index)
            .is_some_and(|e| e.kind != Kind::Dir)
            && last.is_none_or(|l| h.index > l);
        if !fits {
            return Err(WireError::Protocol("STATUS does not match the offer".into()).into());
        }
        last = Some(h.index);
    }
    // Prove what we hold of what the receiver holds; it answers which proofs matched.
    let (m, proven, proofs) = prove(m, status.held.clone()).await?;
    let mut checks: Vec<Check> = Vec::new();
    if !status.held.is_empty() {
        for msg in wire::list_messages(tag::PROOF, &serde_json::Map::new(), "proofs", &proofs) {
            send_msg(w, msg).await?;
        }
        let c: Checked = wire::recv_list(r, tag::CHECKED, proofs.len(), wire::MAX_OFFER_BYTES)
            .await
            .map_err(limit_is_protocol)?;
        if c.checked.len() != proofs.len()
            || c.checked
                .iter()
                .zip(&proofs)
                .any(|(c, p)| c.index != p.index)
        {
            return Err(WireError::Protocol("CHECKED does not match the proofs".into()).into());
        }
        checks = c.checked;
    }
    let reports: Vec<FileReport> = m
        .offer
        .entries
        .iter()
        .map(|e| FileReport {
            path: e.path.clone(),
            kind: e.kind,
            size: e.size,
            sent: 0,
            resumed_from: 0,
            skipped: false,
            blake3: None,
            ok: e.kind == Kind::Dir,
            error: None,
        })
        .collect();
    // Files the receiver already has under the final name: identical ones are skipped,
    // different ones are conflicts unless it may replace them.
    let (reports, jobs) = plan(m, &status, proven, checks, reports)?;
    let total: u64 = jobs
        .iter()
        .map(|j| j.size.map_or(0, |s| s.saturating_sub(j.offset)))
        .sum();
    progress.plan(
        reports.iter().filter(|r| r.kind != Kind::Dir).count(),
        reports.iter().filter(|r| r.skipped).count(),
        jobs.iter().map(|j| j.offset).sum(),
        total,
    );
    let reports = RefCell::new(reports);
    let (tx, rx) = mpsc::channel(16);
    let reader = std::thread::Builder::new()
        .name("msock-reader".into())
        .spawn(move || read_all(jobs, tx))
        .map_err(|e| SendError::Local(format!("no reader thread: {e}")))?;
    let result = tokio::try_join!(
        pump(w, rx, &reports, progress),
        collect(r, &reports, progress)
    );
    drop(reader);
    let ((), done) = result?;
    Ok(Sent {
        files: reports.into_inner(),
        done,
    })
}

async fn send_msg(w: &mut ChannelWriter, b: Bytes) -> Result<(), SendError> {
    w.send(b)
        .await
        .map_err(|_| SendError::Peer(WireError::Ended))
}

/// A list that went over our limit is the peer's fault here (we set no limit it must know).
fn limit_is_protocol(e: WireError) -> WireError {
    match e {
        WireError::Limit(what) => WireError::Protocol(format!("the receiver sent a {what}")),
        e => e,
    }
}

/// Hashes what the receiver may need to compare, for each entry it holds something of: our
/// first `partial` bytes, and our whole file if one exists there.
async fn prove(
    m: Manifest,
    held: Vec<Held>,
) -> Result<(Manifest, Vec<Proven>, Vec<Proof>), SendError> {
    tokio::task::spawn_blocking(move || {
        let mut proven = Vec::with_capacity(held.len());
        let mut proofs = Vec::with_capacity(held.len());
        for h in &held {
            let e = &m.offer.entries[h.index];
            let mut p = Proven::default();
            let mut proof = Proof {
                index: h.index,
                prefix: None,
                whole: None,
            };
            if let Source::File(path) = &m.sources[h.index] {
                let err = |err: io::Error| {
                    SendError::Local(format!("cannot read {}: {err}", path.display()))
                };
                if e.kind == Kind::File && h.partial > 0 && h.partial <= e.size {
                    let (mine, n) = super::hash_prefix(path, h.partial).map_err(err)?;
                    if n == h.partial {
                        proof.prefix = Some(mine.finalize().to_hex().to_string());
                        p.prefix = Some(mine);
                    }
                }
                if e.kind == Kind::File && h.existing {
                    let (mine, n) = super::hash_prefix(path, e.size).map_err(err)?;
                    if n == e.size {
                        let hex = mine.finalize().to_hex().to_string();
                        proof.whole = Some(hex.clone());
                        p.whole = Some(hex);
                    }
                }
            }
            proven.push(p);
            proofs.push(proof);
        }
        Ok((m, proven, proofs))
    })
    .await
    .map_err(|e| SendError::Local(format!("hashing files to resume: {e}")))?
}

/// Decides what to send: skips files the receiver proved identical, refuses to go on over
/// conflicts, and lists the jobs for the reader thread.
fn plan(
    m: Manifest,
    status: &Status,
    proven: Vec<Proven>,
    checks: Vec<Check>,
    mut reports: Vec<FileReport>,
) -> Result<(Vec<FileReport>, Vec<Job>), SendError> {
    // Per held entry: what it holds, our proof, and the receiver's answer.
    let mut held: std::collections::HashMap<usize, (&Held, Proven, Option<Check>)> = status
        .held
        .iter()
        .zip(proven)
        .map(|(h, p)| (h.index, (h, p, None)))
        .collect();
    for c in checks {
        if let Some(x) = held.get_mut(&c.index) {
            x.2 = Some(c);
        }
    }
    let mut jobs = Vec::new();
    let mut conflicts = Vec::new();
    for (i, src) in m.sources.into_iter().enumerate() {
        let e = &m.offer.entries[i];
        if e.kind == Kind::Dir {
            continue;
        }
        let mut offset = 0;
        let mut hasher = blake3::Hasher::new();
        if let Some((h, p, c)) = held.remove(&i) {
            let c = c.unwrap_or(Check {
                index: i,
                resume: false,
                same: false,
            });
            if h.existing {
                if c.same && p.whole.is_some() {
                    let r = &mut reports[i];
                    r.skipped = true;
                    r.ok = true;
                    r.blake3 = p.whole;
                    continue;
                }
                if !status.overwrite {
                    conflicts.push(e.path.clone());
                    continue;
                }
            }
            if let (true, Some(prefix)) = (c.resume, p.prefix) {
                offset = h.partial;
                hasher = prefix;
            }
        }
        jobs.push(Job {
            index: i,
            source: src,
            size: (e.kind == Kind::File).then_some(e.size),
            offset,
            hasher,
        });
    }
    if !conflicts.is_empty() {
        let n = conflicts.len();
        let some: Vec<_> = conflicts.iter().take(3).map(|c| format!("{c:?}")).collect();
        return Err(SendError::Conflict(format!(
            "{n} file{} already exist{} on the receiver with different contents ({}{}); \
             nothing was sent. Rename or remove them there, or start the receiver with \
             --overwrite",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            some.join(", "),
            if n > 3 { ", ..." } else { "" }
        )));
    }
    Ok((reports, jobs))
}

/// Forwards the reader's pieces into the session as messages, then closes our side. Small
/// messages (START, END, the DATA of small files) are gathered while the reader has more
/// ready, and go into the session together: many small files cost a few sends, not several
/// each (the bytes on the wire are the same).
async fn pump(
    w: &mut ChannelWriter,
    mut rx: mpsc::Receiver<Piece>,
    reports: &RefCell<Vec<FileReport>>,
    progress: &Progress,
) -> Result<(), SendError> {
    let mut current = 0;
    let mut out = BytesMut::new();
    loop {
        let p = match rx.try_recv() {
            Ok(p) => p,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing more ready: what was gathered goes now.
                flush(w, &mut out).await?;
                match rx.recv().await {
                    Some(p) => p,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        match p {
            Piece::Start(s) => {
                current = s.index;
                {
                    let mut rs = reports.borrow_mut();
                    rs[s.index].resumed_from = s.offset;
                    progress.set_file(&rs[s.index].path);
                }
                out.extend_from_slice(&wire::control(tag::START, &s));
            }
            Piece::Data(b) => {
                let n = b.len() as u64;
                out.extend_from_slice(&wire::data_header(b.len()));
                if b.len() <= GATHER_DATA {
                    out.extend_from_slice(&b);
                } else {
                    flush(w, &mut out).await?;
                    send_msg(w, b).await?;
                }
                reports.borrow_mut()[current].sent += n;
                progress.sent.fetch_add(n, Ordering::Relaxed);
            }
            Piece::End(e) => {
                {
                    let mut rs = reports.borrow_mut();
                    rs[e.index].size = e.size;
                    rs[e.index].blake3 = Some(e.blake3.clone());
                }
                out.extend_from_slice(&wire::control(tag::END, &e));
            }
            Piece::Failed(why) => {
                flush(w, &mut out).await?;
                return Err(SendError::Local(why));
            }
        }
        if out.len() >= GATHER {
            flush(w, &mut out).await?;
        }
    }
    flush(w, &mut out).await?;
    w.close();
    Ok(())
}

/// DATA bodies up to this size are copied into the gathered messages; larger ones go as they
/// are.
const GATHER_DATA: usize = 16 << 10;
/// Gathered messages go into the session once they are this large.
const GATHER: usize = 128 << 10;

/// Sends what `out` gathered, if anything.
async fn flush(w: &mut ChannelWriter, out: &mut BytesMut) -> Result<(), SendError> {
    if out.is_empty() {
        return Ok(());
    }
    send_msg(w, out.split().freeze()).await
}

/// Reads the receiver's verdicts until its DONE and the end of its stream.
async fn collect(
    r: &mut ChannelReader,
    reports: &RefCell<Vec<FileReport>>,
    progress: &Progress,
) -> Result<Done, SendError> {
    loop {
        match wire::read_msg(r).await? {
            Some(Msg::Control(tag::VERDICT, body)) => {
                let v: Verdict = wire::decode(tag::VERDICT, &body)?;
                let mut rs = reports.borrow_mut();
                let rep = rs
                    .get_mut(v.index)
                    .ok_or_else(|| WireError::Protocol("VERDICT for no such entry".into()))?;
                rep.ok = v.ok;
                progress.file_done();
                // The receiver's words: escaped before anything shows them.
                rep.error = v.error.as_deref().map(escape);
                if !v.ok {
                    progress.println(&format!(
                        "{}: {}",
                        rep.path,
                        rep.error.as_deref().unwrap_or("failed")
                    ));
                }
            }
            Some(Msg::Control(tag::DONE, body)) => {
                let d: Done = wire::decode(tag::DONE, &body)?;
                if r.recv().await.is_some() {
                    return Err(WireError::Protocol("bytes after DONE".into()).into());
                }
                return Ok(d);
            }
            Some(Msg::Control(t, _)) => return Err(wire::unexpected(t, tag::VERDICT).into()),
            Some(Msg::Data(_)) => return Err(wire::unexpected(tag::DATA, tag::VERDICT).into()),
            None => return Err(WireError::Ended.into()),
        }
    }
}

/// The reader thread: for each job, checks the receiver's partial bytes against ours, then
/// reads, hashes and hands over the rest.
fn read_all(jobs: Vec<Job>, tx: mpsc::Sender<Piece>) {
    for job in jobs {
        if let Err(why) = read_one(&job, &tx) {
            let _ = tx.blocking_send(Piece::Failed(why));
            return;
        }
    }
}

/// Why sending stopped: the session ended (not an error of ours) or a read failed.
fn read_one(job: &Job, tx: &mpsc::Sender<Piece>) -> Result<(), String> {
    let send = |p: Piece| {
        tx.blocking_send(p)
            .map_err(|_| "the transfer ended".to_owned())
    };
    let (mut input, name): (Box<dyn Read>, String) = match &job.source {
        Source::File(p) => (
            Box::new(File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?),
            p.display().to_string(),
        ),
        Source::Stdin => (Box::new(io::stdin()), "stdin".into()),
        Source::None => return Ok(()),
    };
    let read_err = |e: io::Error| format!("cannot read {name}: {e}");
    // Resume where the receiver's bytes were proved ours.
    let mut hasher = job.hasher.clone();
    let offset = job.offset;
    if offset > 0 {
        let mut f = File::open(match &job.source {
            Source::File(p) => p,
            _ => unreachable!("only files resume"),
        })
        .map_err(read_err)?;
        f.seek(SeekFrom::Start(offset)).map_err(read_err)?;
        input = Box::new(f);
    }
    send(Piece::Start(Start {
        index: job.index,
        offset,
    }))?;
    let mut total = offset;
    loop {
        let want = match job.size {
            Some(size) => ((size - total) as usize).min(CHUNK),
            None => CHUNK,
        };
        if want == 0 {
            break;
        }
        let mut buf = BytesMut::zeroed(want);
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        if n == 0 {
            if let Some(size) = job.size {
                return Err(format!(
                    "{name} shrank while being sent ({total} of {size} bytes read); send it again"
                ));
            }
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        total += n as u64;
        send(Piece::Data(buf.freeze()))?;
    }
    send(Piece::End(End {
        index: job.index,
        size: total,
        blake3: hasher.finalize().to_hex().to_string(),
    }))
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
