//! `--code`: `msock listen --code` pairs with one sender and then serves it as an ordinary
//! listener registered at the relay under the pairing's session name, with the pairing's
//! psk; `send-file --code` and `connect --code` pair (or find their ticket) and dial that
//! name with the psk, pinning the listener's key learnt in the pairing.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::dial::dial;
use super::{ctrl_c, family, finish, Exit, Failure};
use crate::cli::{config, DialArgs, ListenArgs, SendFileArgs, StreamArgs};
use crate::pairing::{self, ticket, Accepted, PairingError};
use crate::proto::code::Code;
use crate::proto::handshake::fingerprint;
use crate::proto::Service;
use crate::relay::nameplate::PAIR_ATTEMPTS;
use crate::relay::pairing::relay_addr;
use crate::runtime::channel_io::channel_app;
use crate::runtime::events::Events;
use crate::runtime::services::Next;

/// Most bytes `--text` reads from stdin.
const MAX_TEXT: u64 = 1 << 20;

/// The relay `--code` uses: `given`, else the config file's, with its port filled in.
fn relay(given: Option<&str>) -> Result<String, Failure> {
    let r = config::relay(given).map_err(Failure::local)?;
    relay_addr(&r).map_err(Failure::local)
}

fn failure(e: PairingError) -> Failure {
    Failure::network(e)
}

/// `listen --code`: claims a code at the relay, prints it, pairs. Returns the relay
/// (HOST:PORT) and the paired sender (waiting for [`Accepted::done`]).
pub(crate) async fn listen_pairing(
    args: &ListenArgs,
    listener_key: [u8; 32],
) -> Result<(String, Accepted), Failure> {
    let relay = relay(args.relay.as_deref())?;
    let waiting = pairing::claim(&relay, family(&args.stream))
        .await
        .map_err(failure)?;
    let phrase = waiting.code().phrase();
    eprintln!("code: {phrase}");
    eprintln!(
        "msock: on the other machine: msock send-file --code {phrase} FILES... (or msock connect --code {phrase})"
    );
    let accepted = waiting
        .pair(listener_key, |n, e| {
            eprintln!("msock: a sender failed to pair: {e} (try {n} of {PAIR_ATTEMPTS})")
        })
        .await
        .map_err(failure)?;
    eprintln!("msock: paired");
    Ok((relay, accepted))
}

/// What a coded listener does when a session's task has ended: the first session that
/// ended well ends the listener; a failed one (a killed sender) is reported and it waits
/// for the sender to come back.
pub(crate) fn session_ended(
    r: Result<Result<(), Failure>, tokio::task::JoinError>,
) -> Next<Result<(), Failure>> {
    let r = r.unwrap_or_else(|e| Err(Failure::local(format!("session task failed: {e}"))));
    match r {
        Ok(()) => Next::Stop(Ok(())),
        Err(f) if f.kind == Exit::Interrupted => Next::Stop(Err(f)),
        Err(f) if f.kind == Exit::NotStarted => {
            tracing::info!("{}", f.message);
            Next::Continue
        }
        Err(f) => {
            eprintln!(
                "msock: {} (waiting for the sender to run its command again)",
                f.message
            );
            Next::Continue
        }
    }
}

/// A sender's pairing: the destination to dial, and where its ticket is.
pub(crate) struct Coded {
    /// `NAME@RELAY` of the paired listener.
    pub dest: String,
    relay: String,
    code: Code,
}

impl Coded {
    /// The transfer ended well: the ticket is no longer needed.
    pub(crate) fn forget(&self) {
        ticket::remove(&self.relay, &self.code);
    }
}

/// Pairs with the listener of `code` at `relay` (or the configured one), or finds this
/// code's ticket from an earlier run; sets `dial`'s psk and pinned key.
pub(crate) async fn sender_pairing(
    code: &str,
    relay_arg: Option<&str>,
    dial: &mut DialArgs,
    stream: &StreamArgs,
) -> Result<Coded, Failure> {
    let code = Code::parse(code).map_err(Failure::local)?;
    let relay = relay(relay_arg)?;
    let paired = match ticket::load(&relay, &code) {
        Some(p) => {
            eprintln!("msock: resuming the session paired earlier with this code");
            p
        }
        None => {
            let p = pairing::pair_with(&relay, family(stream), &code, dial.wait)
                .await
                .map_err(failure)?;
            ticket::save(&relay, &code, &p).map_err(Failure::local)?;
            p
        }
    };
    dial.psk = Some(paired.psk);
    dial.peer_key = Some(fingerprint(&paired.listener_key));
    Ok(Coded {
        dest: format!("{}@{relay}", paired.session_name),
        relay,
        code,
    })
}

/// `send-file --code`'s arguments: the paths, and the relay if the last argument is one (it
/// is not a file or folder here, and something else is sent).
pub(crate) fn split_args(args: &[String], text: bool) -> (Vec<PathBuf>, Option<String>) {
    let mut paths: Vec<PathBuf> = args.iter().map(Into::into).collect();
    let last_is_relay = paths
        .last()
        .is_some_and(|p| p.as_os_str() != "-" && std::fs::symlink_metadata(p).is_err())
        && (paths.len() >= 2 || text);
    let relay = if last_is_relay {
        paths.pop().map(|p| p.to_string_lossy().into_owned())
    } else {
        None
    };
    (paths, relay)
}

/// `send-file --code CODE --text [TEXT]`: the text as a byte stream, printed by the
/// listener.
pub(crate) async fn send_text(args: &SendFileArgs, code: &str) -> Result<(), Failure> {
    let started = Instant::now();
    let text = match args.text.as_deref() {
        Some("-") | None => {
            let mut buf = Vec::new();
            tokio::io::stdin()
                .take(MAX_TEXT + 1)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| Failure::local(format!("reading stdin: {e}")))?;
            if buf.len() as u64 > MAX_TEXT {
                return Err(Failure::local(
                    "--text reads at most 1 MiB from stdin; send larger input as a file (PATH -)",
                ));
            }
            buf
        }
        Some(t) => t.as_bytes().to_vec(),
    };
    let (paths, relay_arg) = split_args(&args.args, true);
    if !paths.is_empty() {
        return Err(Failure::local(
            "--text sends text, not files: give only the relay after it (or nothing)",
        ));
    }
    super::apply_process_settings(&args.stream)?;
    let mut dial_args = args.dial.clone();
    let coded = sender_pairing(code, relay_arg.as_deref(), &mut dial_args, &args.stream).await?;
    let (source, sink, mut w, mut r) = channel_app(4);
    let mut driver = dial(
        &coded.dest,
        &dial_args,
        &args.stream,
        Service::Stream,
        Some(source),
        Some(sink),
    )
    .await?;
    driver.set_interrupt(ctrl_c());
    let feed = async move {
        let _ = w.send(Bytes::from(text)).await;
        w.close();
        while r.recv().await.is_some() {}
    };
    let ((), (res, totals)) = tokio::join!(feed, driver.run());
    let events = Events::sessions(args.stream.json_events);
    finish(res, totals, started, None, &events).await?;
    coded.forget();
    if !args.quiet {
        eprintln!("msock: text sent");
    }
    Ok(())
}
