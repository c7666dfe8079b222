//! The receiving end of a file transfer: checks the offer, reports what it already holds,
//! writes and verifies each file, and answers with a verdict per file.

use std::path::PathBuf;

use super::checks::{
    check_offer, check_proofs, free_space, make_dir, make_parent, relative, ProofError,
};
use super::reserve;
use super::wire::{
    self, tag, Done, End, Held, Kind, Msg, Offer, Proofs, Start, Status, Verdict, WireError,
};
use super::writer::{Finishing, Target, WriteError, Writer};
use crate::runtime::channel_io::{ChannelReader, ChannelWriter};

/// Where and how a receiver saves files.
#[derive(Debug, Clone)]
pub struct SaveRules {
    /// The directory everything goes under.
    pub dir: PathBuf,
    /// Replace existing files that differ.
    pub overwrite: bool,
    /// Largest offer accepted (total bytes).
    pub max_size: Option<u64>,
}

/// What a transfer achieved.
#[derive(Debug, Default)]
pub struct Received {
    /// Files verified and saved (skipped identical ones not included).
    pub files: usize,
    /// File bytes written.
    pub bytes: u64,
    /// Bytes that were already there from an earlier attempt and were kept.
    pub resumed: u64,
    /// Files that failed verification or could not be saved, with why.
    pub failed: Vec<String>,
}

/// Why a transfer failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The sender misbehaved or left.
    #[error("{0}")]
    Peer(#[from] WireError),
    /// We refused the offer (the sender was told why).
    #[error("refused: {0}")]
    Refused(String),
    /// Our disk or file system failed.
    #[error("{0}")]
    Local(String),
    /// A newer transfer from the same sender took the file over (this one was parked).
    #[error("{0}")]
    TakenOver(String),
}

impl From<WriteError> for ReceiveError {
    /// Everything but a verification failure (handled per file) and a takeover is our own
    /// disk's fault.
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::TakenOver(_) => ReceiveError::TakenOver(e.to_string()),
            e => ReceiveError::Local(e.to_string()),
        }
    }
}

/// Tells the sender why its offer is refused and closes our side.
async fn refuse(
    w: &mut ChannelWriter,
    rules: &SaveRules,
    why: String,
) -> Result<Received, ReceiveError> {
    let status = Status {
        refused: Some(why.clone()),
        held: Vec::new(),
        overwrite: rules.overwrite,
        more: false,
    };
    let _ = w.send(wire::control(tag::STATUS, &status)).await;
    w.close();
    Err(ReceiveError::Refused(why))
}

/// The fields of STATUS besides its list.
#[derive(serde::Serialize)]
struct StatusHead {
    overwrite: bool,
}

/// Sends a list message (possibly cut into several).
async fn send_list<H: serde::Serialize, T: serde::Serialize>(
    w: &mut ChannelWriter,
    t: u8,
    head: &H,
    key: &str,
    items: &[T],
) -> Result<(), ReceiveError> {
    for m in wire::list_messages(t, head, key, items) {
        send(w, m).await?;
    }
    Ok(())
}

/// An offer's size, as the receiver's user is asked about it before it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferSize {
    /// Files and streams (folders not counted).
    pub files: usize,
    /// Bytes of all files (streams count 0).
    pub bytes: u64,
}

/// Receives one transfer over `ch` into `rules.dir`.
pub async fn receive(
    w: &mut ChannelWriter,
    ch: &mut ChannelReader,
    rules: &SaveRules,
) -> Result<Received, ReceiveError> {
    receive_asking(w, ch, rules, |_| async { Ok(()) }).await
}

/// [`receive`], asking `ask` about the offer first: Err(why) refuses it (the sender is told
/// why), before anything is checked or written.
pub async fn receive_asking<F, A>(
    w: &mut ChannelWriter,
    ch: &mut ChannelReader,
    rules: &SaveRules,
    ask: A,
) -> Result<Received, ReceiveError>
where
    A: FnOnce(OfferSize) -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let offer: Offer =
        match wire::recv_list(ch, tag::OFFER, wire::MAX_ENTRIES, wire::MAX_OFFER_BYTES).await {
            Ok(o) => o,
            Err(WireError::Limit(what)) => {
                return refuse(w, rules, format!("the offer is too large ({what})")).await
            }
            Err(e) => return Err(e.into()),
        };
    // An offer whose sizes overflow is refused by the checks below, unasked.
    if let Some(bytes) = offer.total_size() {
        let files = offer.entries.iter().filter(|e| e.kind != Kind::Dir).count();
        if let Err(why) = ask(OfferSize { files, bytes }).await {
            return refuse(w, rules, why).await;
        }
    }
    let rules2 = rules.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let (entries, needs) = check_offer(&offer, &rules2)?;
        let dir = &rules2.dir;
        let r = reserve::claim(dir, needs, free_space(dir))?;
        Ok::<_, String>((entries, r))
    })
    .await
    .map_err(|e| ReceiveError::Local(format!("checking the offer: {e}")))?;
    let (mut entries, mut reservation) = match checked {
        Ok(x) => x,
        Err(why) => return refuse(w, rules, why).await,
    };
    let held: Vec<Held> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.held(i))
        .collect();
    let head = StatusHead {
        overwrite: rules.overwrite,
    };
    send_list(w, tag::STATUS, &head, "held", &held).await?;
    let mut hashers = std::collections::HashMap::new();
    if !held.is_empty() {
        // The sender proves what it holds; we answer yes or no.
        let proofs: Proofs = wire::recv_list(ch, tag::PROOF, held.len(), wire::MAX_OFFER_BYTES)
            .await
            .map_err(|e| match e {
                WireError::Limit(what) => WireError::Protocol(format!("more proofs ({what})")),
                e => e,
            })?;
        let (checks, h, back) = tokio::task::spawn_blocking(move || {
            let r = check_proofs(&proofs.proofs, &mut entries);
            r.map(|(c, h)| (c, h, entries))
        })
        .await
        .map_err(|e| ReceiveError::Local(format!("checking the proofs: {e}")))?
        .map_err(|e| match e {
            ProofError::Peer(why) => ReceiveError::Peer(WireError::Protocol(why)),
            ProofError::Local(e) => e.into(),
        })?;
        entries = back;
        hashers = h;
        let head = serde_json::Map::new();
        send_list(w, tag::CHECKED, &head, "checked", &checks).await?;
    }
    let mut out = Received::default();
    for e in entries.iter().filter(|e| e.kind == Kind::Dir) {
        make_dir(&e.final_path, &rules.dir).map_err(ReceiveError::Local)?;
    }
    let writer =
        Writer::spawn().map_err(|e| ReceiveError::Local(format!("no writer thread: {e}")))?;
    // The files' part runs as one block so that the writer thread is always ended (and what
    // it had queued is on disk) before the transfer's end is reported, however it ends. The
    // verdicts go out as the writer commits the files, alongside.
    let (vtx, vrx) = tokio::sync::mpsc::channel(VERDICTS_AHEAD);
    let reading = async {
        let vtx = vtx;
        let mut done = vec![false; entries.len()];
        // The file being received: its index and how many bytes it may still carry.
        let mut current: Option<(usize, u64)> = None;
        let mut stream_bytes = 0u64;
        // Checked by `check_offer`: the files' sizes do not overflow.
        let files_total: u64 = entries.iter().map(|e| e.size).sum();
        loop {
            let Some(msg) = wire::read_msg(ch).await? else {
                if let Some((i, _)) = current {
                    return Err(WireError::Protocol(format!(
                        "the sender stopped inside {}",
                        entries[i].final_path.display()
                    ))
                    .into());
                }
                break;
            };
            match msg {
                Msg::Control(tag::START, body) => {
                    let s: Start = wire::decode(tag::START, &body)?;
                    if current.is_some() {
                        return Err(proto("START inside another file"));
                    }
                    let e = entries
                        .get(s.index)
                        .filter(|e| e.kind != Kind::Dir && !e.same && !done[s.index])
                        .ok_or_else(|| {
                            proto(&format!(
                                "START for entry {}, which takes no bytes",
                                s.index
                            ))
                        })?;
                    if s.offset != 0 && s.offset != e.resume {
                        return Err(proto(&format!(
                            "START at offset {} where only 0 or {} make sense",
                            s.offset, e.resume
                        )));
                    }
                    let hasher = match s.offset {
                        0 => blake3::Hasher::new(),
                        _ => hashers.remove(&s.index).unwrap_or_default(),
                    };
                    out.resumed += s.offset;
                    make_parent(&e.final_path, &rules.dir).map_err(ReceiveError::Local)?;
                    writer
                        .open(Target {
                            part: e.part.clone(),
                            final_path: e.final_path.clone(),
                            exec: e.exec,
                            offset: s.offset,
                            hasher,
                            replace: rules.overwrite,
                        })
                        .await?;
                    let room = match e.kind {
                        // Streams (unknown size) share --max-size with the offer's files.
                        Kind::Stream => rules
                            .max_size
                            .unwrap_or(u64::MAX)
                            .saturating_sub(files_total)
                            .saturating_sub(stream_bytes),
                        _ => e.size.saturating_sub(s.offset),
                    };
                    current = Some((s.index, room));
                }
                Msg::Data(len) => {
                    let Some((i, room)) = current.as_mut() else {
                        return Err(proto("DATA outside a file"));
                    };
                    if len as u64 > *room {
                        return Err(match entries[*i].kind {
                            Kind::Stream => ReceiveError::Refused(format!(
                                "{} is larger than this receiver's --max-size",
                                relative(&entries[*i].final_path, &rules.dir)
                            )),
                            _ => proto("more bytes than the file's size"),
                        });
                    }
                    *room -= len as u64;
                    let mut left = len;
                    while left > 0 {
                        let piece = ch.recv_up_to(left).await.ok_or(WireError::Ended)?;
                        left -= piece.len();
                        out.bytes += piece.len() as u64;
                        reservation.consume(&entries[*i].part, piece.len() as u64);
                        if entries[*i].kind == Kind::Stream {
                            stream_bytes += piece.len() as u64;
                        }
                        writer.write(piece).await?;
                    }
                }
                Msg::Control(tag::END, body) => {
                    let end: End = wire::decode(tag::END, &body)?;
                    let Some((i, _)) = current.take().filter(|&(i, _)| i == end.index) else {
                        return Err(proto("END for a file that was not started"));
                    };
                    let want = blake3::Hash::from_hex(&end.blake3)
                        .map_err(|_| proto("END with a malformed hash"))?;
                    let e = &entries[i];
                    if e.kind == Kind::File && end.size != e.size {
                        return Err(proto("END with a size other than the offer's"));
                    }
                    done[i] = true;
                    // Verified, synced and renamed with other files: the verdict follows.
                    let fin = writer.finish(Some((end.size, want))).await?;
                    let saved_as = relative(&e.final_path, &rules.dir);
                    if vtx.send((i, saved_as, fin)).await.is_err() {
                        return Err(WireError::Ended.into());
                    }
                }
                Msg::Control(t, _) => return Err(wire::unexpected(t, tag::START).into()),
            }
        }
        Ok(out)
    };
    let res: Result<Received, ReceiveError> = async {
        let (mut out, (files, failed)) = tokio::try_join!(reading, verdicts(w, vrx))?;
        out.files = files;
        out.failed = failed;
        let fin = Done {
            files: out.files,
            bytes: out.bytes,
        };
        send(w, wire::control(tag::DONE, &fin)).await?;
        w.close();
        Ok(out)
    }
    .await;
    writer.close().await;
    res
}

/// Files whose verdict may be pending (verified or being written, not yet committed).
const VERDICTS_AHEAD: usize = 4096;

/// Sends each file's verdict once the writer is done with it, in the order the files ended
/// (those known at once go together); returns the files saved and the failures. A failure
/// that is not the file's own ends the transfer.
async fn verdicts(
    w: &mut ChannelWriter,
    mut rx: tokio::sync::mpsc::Receiver<(usize, String, Finishing)>,
) -> Result<(usize, Vec<String>), ReceiveError> {
    let (mut files, mut failed) = (0, Vec::new());
    let mut out = bytes::BytesMut::new();
    loop {
        let (index, saved_as, mut fin) = match rx.try_recv() {
            Ok(x) => x,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                flush(w, &mut out).await?;
                match rx.recv().await {
                    Some(x) => x,
                    None => break,
                }
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
        };
        let r = match fin.try_done() {
            Some(r) => r,
            None => {
                flush(w, &mut out).await?;
                fin.done().await
            }
        };
        let verdict = match r {
            Ok(()) => {
                files += 1;
                Verdict {
                    index,
                    ok: true,
                    error: None,
                    saved_as: Some(saved_as),
                }
            }
            Err(why @ WriteError::Mismatch { .. }) => {
                failed.push(why.to_string());
                Verdict {
                    index,
                    ok: false,
                    error: Some(why.to_string()),
                    saved_as: None,
                }
            }
            Err(why) => return Err(why.into()),
        };
        out.extend_from_slice(&wire::control(tag::VERDICT, &verdict));
        if out.len() >= 64 << 10 {
            flush(w, &mut out).await?;
        }
    }
    flush(w, &mut out).await?;
    Ok((files, failed))
}

/// Sends the gathered messages, if any.
async fn flush(w: &mut ChannelWriter, out: &mut bytes::BytesMut) -> Result<(), ReceiveError> {
    if out.is_empty() {
        return Ok(());
    }
    send(w, out.split().freeze()).await
}

fn proto(what: &str) -> ReceiveError {
    ReceiveError::Peer(WireError::Protocol(what.to_owned()))
}

async fn send(w: &mut ChannelWriter, b: bytes::Bytes) -> Result<(), ReceiveError> {
    w.send(b)
        .await
        .map_err(|_| ReceiveError::Peer(WireError::Ended))
}
