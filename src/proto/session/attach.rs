//! Attaching, replacing and retiring a session's flowpaths.

use std::time::Duration;

use rand::RngCore;

use super::resume::Tickets;
use super::{AttachError, Event, FrameError, Role, Session, SessionError};
use crate::proto::auth::ProofSide;
use crate::proto::deframer::Deframer;
use crate::proto::frame::{ErrorCode, Frame, NONCE_LEN};
use crate::proto::path::{Path, PathId, PathState};

/// Server side of a flowpath attach between [`Session::challenge_attach`] and
/// [`Session::complete_attach`]. Holds the fresh server nonce, so each attach can succeed once.
#[derive(Debug)]
pub struct PendingAttach {
    path: PathId,
    client_nonce: [u8; NONCE_LEN],
    server_nonce: [u8; NONCE_LEN],
}

impl PendingAttach {
    /// The path id the client asked for.
    pub fn path(&self) -> PathId {
        self.path
    }
}

impl Session {
    /// Client: a path id for a flowpath to be connected later (its HELLO then comes from
    /// [`Session::reattach_path`]).
    pub fn allocate_path_id(&mut self) -> PathId {
        let id = PathId(self.next_path_id);
        self.next_path_id += 1;
        id
    }

    /// Client: starts a new flowpath; send the returned HELLO(attach) on a fresh connection.
    pub fn open_path(&mut self, rng: &mut impl RngCore, now: Duration) -> (PathId, Frame) {
        let id = PathId(self.next_path_id);
        self.next_path_id += 1;
        (id, self.reattach_path(id, rng, now))
    }

    /// Client: replaces flowpath `id` with a fresh connection (migration). Whatever the old
    /// connection had in flight is queued for re-sending. Send the returned HELLO(attach).
    pub fn reattach_path(&mut self, id: PathId, rng: &mut impl RngCore, now: Duration) -> Frame {
        debug_assert_eq!(self.role, Role::Client);
        self.retire_path(id);
        let mut client_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut client_nonce);
        self.next_path_id = self.next_path_id.max(id.0 + 1);
        if let Some(hello) = self.resume_hello(id, client_nonce, now) {
            return hello;
        }
        let path = self.fresh_path(id, PathState::AwaitChallenge { client_nonce }, now);
        self.paths.insert(id, path);
        Frame::HelloAttach {
            session_id: self.id,
            path_id: id.0,
            client_nonce,
        }
    }

    /// Server: answers a HELLO(attach) for this session with a CHALLENGE. Nothing changes in
    /// the session until [`Session::complete_attach`] verifies the client's proof.
    pub fn challenge_attach(
        &self,
        hello: &Frame,
        rng: &mut impl RngCore,
    ) -> Result<(PendingAttach, Frame), AttachError> {
        let Frame::HelloAttach {
            path_id,
            client_nonce,
            ..
        } = hello
        else {
            return Err(AttachError::Unexpected(hello.name()));
        };
        // A finished session still takes attaches: its last FIN_ACK may have been lost with
        // the path, and the peer can only finish once it is re-sent on a new one.
        if self.error.is_some() {
            return Err(AttachError::SessionEnded);
        }
        let mut server_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut server_nonce);
        let server_proof = self.secret.proof(
            ProofSide::Server,
            self.id,
            *path_id,
            client_nonce,
            &server_nonce,
            self.recv.contiguous_end(),
        );
        let pending = PendingAttach {
            path: PathId(*path_id),
            client_nonce: *client_nonce,
            server_nonce,
        };
        let challenge = Frame::Challenge {
            server_nonce,
            server_proof,
            cumulative: self.recv.contiguous_end(),
        };
        Ok((pending, challenge))
    }

    /// Server: checks the client's ATTACH_PROOF, read by `rx` (the deframer of the connection
    /// being attached); on success the path is active (replacing any older connection with the
    /// same id) and the client's resume offset is applied. Encrypted: the client's records
    /// follow its proof, and `rx` opens them from now on.
    pub fn complete_attach(
        &mut self,
        pending: PendingAttach,
        proof: &Frame,
        rx: &mut Deframer,
        now: Duration,
    ) -> Result<PathId, AttachError> {
        let Frame::AttachProof {
            client_proof,
            cumulative,
        } = proof
        else {
            return Err(AttachError::Unexpected(proof.name()));
        };
        self.check_client_attach(
            pending.path.0,
            &pending.client_nonce,
            &pending.server_nonce,
            client_proof,
            *cumulative,
        )?;
        let id = pending.path;
        self.activate_attached(id, *cumulative, now);
        self.key_path_now(id, &pending.client_nonce, &pending.server_nonce, rx);
        Ok(id)
    }

    /// Server: whether a client's attach of path `pid` may go ahead: the session has not
    /// failed, the proof over both nonces verifies, and the resume offset is one we reached.
    /// A finished session still takes attaches: its last FIN_ACK may have been lost with the
    /// path, and the peer can only finish once it is re-sent on a new one.
    pub(super) fn check_client_attach(
        &self,
        pid: u32,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        client_proof: &[u8; crate::proto::frame::PROOF_LEN],
        cumulative: u64,
    ) -> Result<(), AttachError> {
        if self.error.is_some() {
            return Err(AttachError::SessionEnded);
        }
        let ok = self.secret.verify(
            ProofSide::Client,
            self.id,
            pid,
            client_nonce,
            server_nonce,
            cumulative,
            client_proof,
        );
        if !ok {
            return Err(AttachError::BadProof);
        }
        if cumulative > self.send.sent_once() {
            return Err(AttachError::Unexpected(
                "resume offset beyond what was sent",
            ));
        }
        Ok(())
    }

    /// Server: a verified attach of path `id` (new, or replacing the connection that had the
    /// id). `cumulative` is the client's resume offset, already checked.
    pub(super) fn activate_attached(&mut self, id: PathId, cumulative: u64, now: Duration) {
        self.retire_path(id);
        let mut path = self.fresh_path(id, PathState::Active, now);
        path.ack_now = true;
        path.ping_now = true;
        self.paths.insert(id, path);
        self.on_cumulative(cumulative);
        self.issue_ticket(id);
        self.awaiting_delivery = Some((id, now, self.recv.contiguous_end()));
        self.events.push_back(Event::PathActive(id));
    }

    /// A new connection for path `id`, carrying over the counters of the connection it
    /// replaces (RTT and rate estimates start afresh: the route may differ).
    pub(super) fn fresh_path(&mut self, id: PathId, state: PathState, now: Duration) -> Path {
        let mut path = Path::new(state, now);
        let old = self.paths.get(&id).map(|p| p.stats.clone());
        if let Some(stats) = old.or_else(|| self.retired_stats.remove(&id)) {
            path.stats = stats.for_new_connection();
        }
        path
    }

    /// The connection of path `id` is gone (reset, closed, or given up on). Its in-flight
    /// bytes are queued for the remaining paths.
    pub fn path_closed(&mut self, id: PathId) {
        if self.retire_path(id) {
            if let Some(p) = self.paths.remove(&id) {
                self.retired_stats.insert(id, p.stats);
            }
        }
    }

    /// Path `id` is lost with the last `bytes` bytes of its connection not delivered (never
    /// handed to the network: still queued here or unsent in the kernel, e.g. written after
    /// the local address went away; or not yet acknowledged while TCP was recovering from a
    /// loss, where the peer's stream waits): about that many of the newest stream bytes it
    /// carried never reached the peer, so a path resuming blind re-sends them first instead
    /// of waiting a round trip for the peer to say so. Call before [`Session::path_closed`].
    /// Connection bytes include frame and record headers, so the estimate errs towards
    /// re-sending a few bytes that did arrive, never towards missing the hole's start.
    pub fn path_unsent_tail(&mut self, id: PathId, bytes: u64) {
        let Some(path) = self.paths.get(&id) else {
            return;
        };
        let mut left = bytes;
        let mut from = None;
        for &(s, e) in path.inflight.iter().rev() {
            if left == 0 {
                break;
            }
            let take = left.min(e - s);
            // Ranges re-sent after a lag are not in offset order: the lowest start counts.
            from = Some(from.map_or(e - take, |f: u64| f.min(e - take)));
            left -= take;
        }
        if let Some(from) = from {
            self.send.missing_from(from);
        }
    }

    /// The connection of path `id` ended with the peer's orderly close (its kernel's TCP FIN)
    /// and reached the peer directly, not through a relay. msock resets every connection it
    /// abandons while the session goes on, so an orderly close of the last active flowpath
    /// while the session still needs the network means the peer's process exited: the
    /// session fails with [`SessionError::PeerExited`]. An orderly close of one of several
    /// active flowpaths only retires it (the others end the same way if the peer is gone; a
    /// peer that finished may close one while its last FIN_ACK is still on another), and
    /// so does one on a server that never accepted a frame of the client.
    pub fn path_ended_by_peer(&mut self, id: PathId) {
        let was_active = self.paths.get(&id).is_some_and(|p| p.is_active());
        let others = self.active_paths().any(|p| p != id);
        self.path_closed(id);
        let needs_network = !(self.write_finished() && self.peer_complete_and_acked());
        // A server's client that never got a frame accepted did not exit a session: it left
        // the handshake (e.g. it refused our key), which the runtime reports as such.
        let began = self.heard_from_peer || self.role == Role::Client;
        if was_active && !others && needs_network && began {
            self.fail(SessionError::PeerExited);
        }
    }

    /// Moves a path's in-flight data to the retransmit queue; true if the path existed.
    pub(super) fn retire_path(&mut self, id: PathId) -> bool {
        let Some(path) = self.paths.get_mut(&id) else {
            return false;
        };
        self.send.lost(path.inflight.drain(..));
        if path.fin_inflight {
            self.send_close.fin_lost();
        }
        let was_active = path.is_active();
        if was_active {
            self.events.push_back(Event::PathClosed(id));
            // Feedback sent on this path may have died with it: a window update or our
            // FIN_ACK. Send both again on the other paths (or the next one attached).
            if self.recv.is_complete() {
                self.recv_close.owe_fin_ack();
            }
            for (&other, p) in self.paths.iter_mut() {
                if other != id && p.is_active() {
                    p.ack_now = true;
                }
            }
        }
        true
    }

    /// Client: the server's answer on a path being attached: CHALLENGE to a HELLO(attach)
    /// (`ticket` None) or RESUMED to a HELLO(resume) (`ticket` is the nonce it used). Either
    /// way the server must prove it knows the secret over both nonces; then the path is active
    /// and the server's resume offset applies. A refusal closes just this path, unless the
    /// server no longer knows the session at all.
    pub(super) fn on_attach_reply(
        &mut self,
        id: PathId,
        client_nonce: [u8; NONCE_LEN],
        ticket: Option<[u8; NONCE_LEN]>,
        frame: Frame,
        rx: &mut Deframer,
        now: Duration,
    ) -> Result<(), FrameError> {
        let (server_nonce, server_proof, cumulative) = match (frame, ticket) {
            (
                Frame::Challenge {
                    server_nonce,
                    server_proof,
                    cumulative,
                },
                None,
            ) => (server_nonce, server_proof, cumulative),
            (
                Frame::Resumed {
                    server_proof,
                    cumulative,
                },
                Some(ticket),
            ) => (ticket, server_proof, cumulative),
            (Frame::Error { code, reason }, _) => {
                self.path_closed(id);
                if code == ErrorCode::UnknownSession {
                    // The server no longer has the session (it restarted, or gave up
                    // waiting): no flowpath can ever attach again.
                    return Err(SessionError::PeerError { code, reason }.into());
                }
                if ticket.is_some() {
                    // Most likely a ticket the server no longer holds: attach the slow way.
                    if let Tickets::Held(held) = &mut self.tickets {
                        held.clear();
                    }
                }
                return Err(FrameError::PathRefused(format!(
                    "attach refused: {code}: {}",
                    crate::proto::text::Untrusted(&reason)
                )));
            }
            (other, _) => {
                self.path_closed(id);
                return Err(FrameError::PathRefused(format!(
                    "unexpected {} while attaching path {id}",
                    other.name()
                )));
            }
        };
        let ok = self.secret.verify(
            ProofSide::Server,
            self.id,
            id.0,
            &client_nonce,
            &server_nonce,
            cumulative,
            &server_proof,
        );
        if !ok {
            // An impostor (or a server that lost the session): drop just this path, so that
            // whoever answers one connection cannot end the session.
            self.path_closed(id);
            return Err(FrameError::PathRefused(format!(
                "the server on path {id} failed its attach proof (it does not know the session secret)"
            )));
        }
        if cumulative > self.send.sent_once() {
            return Err(SessionError::Protocol("resume offset beyond what was sent".into()).into());
        }
        let our_cumulative = self.recv.contiguous_end();
        // Keyed over both nonces, unless a ticket's keys were made with the HELLO(resume).
        let keys = match ticket {
            None => self.path_keys(id, &client_nonce, &server_nonce),
            Some(_) => None,
        };
        let Some(path) = self.paths.get_mut(&id) else {
            return Err(FrameError::PathRefused(format!(
                "frame on path {id}, which is no longer attached"
            )));
        };
        if let Some((seal, open)) = keys {
            path.seal = Some(seal);
            rx.set_opener(open);
        }
        if ticket.is_none() {
            let client_proof = self.secret.proof(
                ProofSide::Client,
                self.id,
                id.0,
                &client_nonce,
                &server_nonce,
                our_cumulative,
            );
            let proof = Frame::AttachProof {
                client_proof,
                cumulative: our_cumulative,
            };
            // Encrypted: the proof is the last frame in clear; the server's records start
            // right after its CHALLENGE.
            if self.encrypted {
                path.clear_first = Some(proof);
            } else {
                path.control.push_back(proof);
            }
        } else {
            // Encrypted: the server's records start right after its RESUMED.
            if let Some(open) = path.opener_after_reply.take() {
                rx.set_opener(open);
            }
        }
        path.state = PathState::Active;
        // The attach timeout is over; the dead-time clock restarts as for any path.
        path.awaiting_since = path.has_outstanding().then_some(now);
        path.ping_now = true;
        // Re-advertise our window: an update may have died with the old path.
        path.ack_now = true;
        self.on_cumulative(cumulative);
        self.awaiting_delivery = Some((id, now, self.recv.contiguous_end()));
        self.events.push_back(Event::PathActive(id));
        Ok(())
    }
}
