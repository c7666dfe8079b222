//! The server's part of a session: flowpaths arrive as connections that ask to attach (routed
//! here by the listener); it challenges and verifies them, and remembers its own address moves
//! to announce them to the client.

use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::paths::{read_frames_once, write_out};
use super::{Driver, PathConn, Side};
use crate::proto::{ErrorCode, Frame, PathId, PendingAttach};
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::conn::FlowConn;

/// How long a server waits for the ATTACH_PROOF after its CHALLENGE.
const PROOF_TIMEOUT: Duration = Duration::from_secs(10);

/// Most attaches of one session waiting for their ATTACH_PROOF. The session id travels in
/// the clear, so anyone can send HELLO(attach) for it; beyond this, the oldest attempt of
/// the source address holding the most is dropped, so that a flood from one place neither
/// slows the session down nor crowds out its real client's attach (which answers within one
/// round trip).
pub(super) const MAX_PENDING: usize = 16;

/// A new connection that asks to attach to this session (server side): its HELLO(attach) has
/// been read already.
#[derive(Debug)]
pub struct AttachRequest {
    /// The connection, preamble consumed, our preamble not yet sent.
    pub conn: FlowConn,
    /// The HELLO(attach) frame.
    pub hello: Frame,
}

/// What only a server's driver keeps: where its flowpaths come from, the ones being verified,
/// and an address move of ours that the client has not been told of yet.
pub struct ServerSide {
    /// Connections that ask to attach to this session (None once the listener is gone).
    pub(super) incoming: Option<mpsc::Receiver<AttachRequest>>,
    /// Connections that were challenged and owe their ATTACH_PROOF.
    pub(super) pending: Vec<PendingConn>,
    /// Our address went away and the client has not been told where we are now.
    pub(super) moved_from: Option<MovedFrom>,
    /// The address our last acknowledged RECONNECT announced and the client control socket
    /// that acknowledged it, until a flowpath attaches: if that address goes away too before
    /// the client is back, the client must be told again (no connection of ours remains to
    /// say where it is).
    pub(super) acked: Option<(SocketAddr, SocketAddr)>,
}

impl ServerSide {
    /// A server whose listener routes the session's new connections to `incoming`.
    pub fn new(incoming: mpsc::Receiver<AttachRequest>) -> Self {
        ServerSide {
            incoming: Some(incoming),
            pending: Vec::new(),
            moved_from: None,
            acked: None,
        }
    }
}

/// Server: a connection that was challenged and owes its ATTACH_PROOF.
pub(super) struct PendingConn {
    pub(super) conn: FlowConn,
    pending: PendingAttach,
    deadline: Instant,
}

/// Server: an address of ours that went away while a client used it.
pub(super) struct MovedFrom {
    pub(super) ip: IpAddr,
    /// The interface it was on, where its replacement most likely appears.
    pub(super) iface: Option<String>,
    /// Our port (the listener's), which the new address keeps.
    pub(super) port: u16,
    /// The client's control socket.
    pub(super) client: SocketAddr,
}

impl<I: AppSource, O: AppSink> Driver<I, O> {
    pub(super) fn poll_incoming(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let Side::Server(server) = &mut self.side else {
                return progress;
            };
            let Some(rx) = server.incoming.as_mut() else {
                return progress;
            };
            match rx.poll_recv(cx) {
                Poll::Ready(Some(req)) => {
                    progress = true;
                    let AttachRequest { mut conn, hello } = req;
                    if matches!(hello, Frame::HelloResume { .. }) {
                        self.resume(conn, &hello);
                        continue;
                    }
                    match self.session.challenge_attach(&hello, &mut self.rng) {
                        Ok((pending, challenge)) => {
                            conn.queue_preamble();
                            conn.queue(&challenge);
                            if server.pending.len() >= MAX_PENDING {
                                let i = crowded_oldest(&server.pending, conn.peer.ip());
                                let old = server.pending.swap_remove(i);
                                tracing::debug!(
                                    "too many attach attempts for this session; dropping the one from {}",
                                    old.conn.peer
                                );
                                old.conn.abandon();
                            }
                            server.pending.push(PendingConn {
                                conn,
                                pending,
                                deadline: Instant::now() + PROOF_TIMEOUT,
                            });
                        }
                        Err(e) => {
                            tracing::info!("refusing flowpath from {}: {e}", conn.peer);
                            tokio::spawn(conn.refuse(ErrorCode::UnknownSession, e.to_string()));
                        }
                    }
                }
                Poll::Ready(None) => {
                    server.incoming = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        progress
    }

    /// Server: a HELLO(resume) attaches in one step (RESUMED goes out first), or is refused.
    fn resume(&mut self, mut conn: FlowConn, hello: &Frame) {
        let now = self.now();
        conn.queue_preamble();
        match self.session.resume_attach(hello, &mut conn.deframer, now) {
            Ok((id, resumed)) => {
                tracing::info!("path {id} resumed from {}", conn.peer);
                if let Side::Server(server) = &mut self.side {
                    server.acked = None;
                }
                conn.queue(&resumed);
                route_attached(&mut self.conns, id, conn);
            }
            Err(e) => {
                tracing::info!("refusing flowpath from {}: {e}", conn.peer);
                tokio::spawn(conn.refuse(ErrorCode::AuthFailed, e.to_string()));
            }
        }
    }

    /// Server: sends CHALLENGEs and checks ATTACH_PROOFs of connections being attached.
    pub(super) fn poll_pending(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let Side::Server(server) = &mut self.side else {
            return false;
        };
        let mut i = 0;
        while i < server.pending.len() {
            let p = &mut server.pending[i];
            let mut drop_reason = None;
            if let Err(e) = write_out(&mut p.conn, cx) {
                drop_reason = Some(e.to_string());
            }
            match read_frames_once(&mut p.conn, cx) {
                Ok(true) => progress = true,
                Ok(false) => {}
                Err(e) => drop_reason = Some(e.to_string()),
            }
            if drop_reason.is_none() {
                match p.conn.deframer.next_frame() {
                    Ok(Some(frame)) => {
                        let p = server.pending.swap_remove(i);
                        let now = self.epoch.elapsed();
                        let mut conn = p.conn;
                        match self.session.complete_attach(
                            p.pending,
                            &frame,
                            &mut conn.deframer,
                            now,
                        ) {
                            Ok(id) => {
                                tracing::info!("path {id} attached from {}", conn.peer);
                                server.acked = None;
                                route_attached(&mut self.conns, id, conn);
                            }
                            Err(e) => {
                                tracing::warn!("refusing flowpath from {}: {e}", conn.peer);
                                tokio::spawn(conn.refuse(ErrorCode::AuthFailed, e.to_string()));
                            }
                        }
                        progress = true;
                        continue;
                    }
                    Ok(None) if Instant::now() > p.deadline => {
                        drop_reason = Some("no attach proof in time".into())
                    }
                    Ok(None) => {}
                    Err(e) => drop_reason = Some(e.to_string()),
                }
            }
            if let Some(why) = drop_reason {
                tracing::info!("dropping attach attempt from {}: {why}", p.conn.peer);
                server.pending.swap_remove(i).conn.abandon();
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }
}

/// Server: `conn` now carries path `id`, replacing the connection that carried it before.
fn route_attached(conns: &mut Vec<PathConn>, id: PathId, conn: FlowConn) {
    if let Some(i) = conns.iter().position(|c| c.id == id) {
        conns.swap_remove(i).conn.abandon();
    }
    conns.push(PathConn::new(id, conn, true));
}

/// The attempt to drop to make room for one from `newcomer`: the oldest of the source address
/// that holds the most (counting the newcomer), so that one flooding address evicts only its
/// own attempts.
fn crowded_oldest(pending: &[PendingConn], newcomer: IpAddr) -> usize {
    let count = |ip: IpAddr| {
        pending.iter().filter(|p| p.conn.peer.ip() == ip).count() + usize::from(ip == newcomer)
    };
    let crowded = pending
        .iter()
        .map(|p| p.conn.peer.ip())
        .max_by_key(|&ip| count(ip))
        .expect("called with a full list");
    pending
        .iter()
        .enumerate()
        .filter(|(_, p)| p.conn.peer.ip() == crowded)
        .min_by_key(|(_, p)| p.deadline)
        .map(|(i, _)| i)
        .expect("the crowded address has an attempt")
}
