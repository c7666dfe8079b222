//! The receiving side of `msock send-file`: `msock listen --save-dir DIR` serves each file
//! transfer as its own session, concurrently with the listener's other sessions.

use std::path::PathBuf;
use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};

use super::consent::{Consent, Sender};
use super::{ctrl_c, Failure};
use crate::runtime::channel_io::channel_app;
use crate::runtime::server::Accepted;
use crate::runtime::{DriveError, Outcome};
use crate::transfer::progress::si_bytes;
use crate::transfer::receiver::{receive_asking, ReceiveError, SaveRules};

/// Where and how a listener saves files (`--save-dir`, `--overwrite`, `--max-size`), and
/// whether it asks first (`--yes`).
#[derive(Debug)]
pub(crate) struct SaveOptions {
    rules: SaveRules,
    /// Who decides about each offer.
    pub consent: Consent,
}

impl SaveOptions {
    /// Checks `dir`, creating it if missing; `consent` decides about offers.
    pub fn new(
        dir: PathBuf,
        overwrite: bool,
        max_size: Option<u64>,
        consent: Consent,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot use --save-dir {}: {e}", dir.display()))?;
        if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Err(format!("--save-dir {} is not a folder", dir.display()));
        }
        Ok(SaveOptions {
            rules: SaveRules {
                dir,
                overwrite,
                max_size,
            },
            consent,
        })
    }
}

/// Receives one file transfer into the save directory, then prints a line about it.
pub async fn serve(accepted: Accepted, save: &SaveOptions) -> Result<(), Failure> {
    let started = Instant::now();
    // The sender: its key, and its address as we saw it (the relay's, through one).
    let peer = Sender {
        key: accepted.peer_key(),
        addr: accepted.peer(),
        relayed: accepted.relayed(),
    };
    let declined = AtomicBool::new(false);
    let (source, sink, mut w, mut r) = channel_app(16);
    let (mut driver, _registration) = accepted.into_driver(Some(source), Some(sink));
    driver.set_interrupt(ctrl_c());
    let transfer = async {
        let (peer, declined) = (&peer, &declined);
        let ask = move |size| async move {
            let d = save.consent.decide(peer, size).await;
            declined.store(d.is_err(), Ordering::Relaxed);
            d
        };
        let res = receive_asking(&mut w, &mut r, &save.rules, ask).await;
        match &res {
            Err(ReceiveError::Peer(e)) => w.abort(format!("the receiver stopped: {e}")).await,
            Err(ReceiveError::Local(e)) => w.abort(format!("the receiver failed: {e}")).await,
            Err(e @ ReceiveError::Refused(_)) => w.abort(format!("the receiver {e}")).await,
            Err(e @ ReceiveError::TakenOver(_)) => {
                w.abort(format!("the receiver stopped: {e}")).await
            }
            _ => {}
        }
        // Read whatever the sender still sends (nothing, normally) so the session can end.
        while r.recv().await.is_some() {}
        res
    };
    let (res, (drive, _)) = tokio::join!(transfer, driver.run());
    let secs = started.elapsed().as_secs_f64();
    let dir = save.rules.dir.display();
    if declined.load(Ordering::Relaxed) {
        // Said when declined; the listener waits for the next offer.
        return Err(Failure::not_started(format!(
            "declined a file transfer from {peer}"
        )));
    }
    match (res, drive) {
        (Ok(got), Ok(Outcome::Finished)) => {
            eprintln!(
                "msock: received {} file{} ({}, {} bytes{}) from {peer} into {dir} in {secs:.2} s",
                got.files,
                if got.files == 1 { "" } else { "s" },
                si_bytes(got.bytes),
                got.bytes,
                if got.resumed > 0 {
                    format!(", resumed from {} bytes", got.resumed)
                } else {
                    String::new()
                },
            );
            match got.failed.first() {
                None => Ok(()),
                Some(f) => Err(Failure::network(format!(
                    "{} file{} from {peer} failed verification; first: {f}",
                    got.failed.len(),
                    if got.failed.len() == 1 { "" } else { "s" }
                ))),
            }
        }
        (Err(ReceiveError::Local(e)), _) => {
            Err(Failure::local(format!("file transfer from {peer}: {e}")))
        }
        (Err(e @ ReceiveError::Refused(_)), _) => {
            Err(Failure::network(format!("file transfer from {peer}: {e}")))
        }
        (_, Err(e)) if !matches!(e, DriveError::Aborted(_)) => Err(Failure::network(format!(
            "file transfer from {peer} failed: {e}"
        ))),
        (Err(e), _) => Err(Failure::network(format!("file transfer from {peer}: {e}"))),
        (Ok(_), r) => Err(Failure::network(format!(
            "file transfer from {peer} ended early ({r:?})"
        ))),
    }
}
