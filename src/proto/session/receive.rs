//! Inbound frames: data into the reorder buffer, feedback into the send state.

use std::time::Duration;

use super::{Event, FrameError, Session, SessionError};
use crate::proto::auth::ProofSide;
use crate::proto::frame::{ErrorCode, Frame};
use crate::proto::path::{PathId, PathState};

impl Session {
    /// Processes one frame received on path `id`. On [`FrameError::Session`] the session has
    /// failed: send whatever [`Session::poll_transmit`] still yields (an ERROR) and close. On
    /// [`FrameError::PathRefused`] close just that path's connection.
    pub fn handle_frame(
        &mut self,
        id: PathId,
        frame: Frame,
        now: Duration,
    ) -> Result<(), FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone().into());
        }
        let r = self.handle_frame_inner(id, frame, now);
        if let Err(FrameError::Session(e)) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn handle_frame_inner(
        &mut self,
        id: PathId,
        frame: Frame,
        now: Duration,
    ) -> Result<(), FrameError> {
        let proto = |m: String| Err(FrameError::Session(SessionError::Protocol(m)));
        let Some(path) = self.paths.get_mut(&id) else {
            // A connection whose path was retired (dead, replaced, or left behind by a server
            // move) can still deliver frames until the runtime closes it: close it, nothing
            // more.
            return Err(FrameError::PathRefused(format!(
                "frame on path {id}, which is no longer attached"
            )));
        };
        path.last_recv = now;
        if let PathState::AwaitResumed {
            client_nonce,
            server_nonce,
        } = path.state
        {
            return self.on_resume_reply(id, (client_nonce, server_nonce), frame, now);
        }
        if let PathState::AwaitChallenge { client_nonce } = path.state {
            return match frame {
                Frame::Challenge {
                    server_nonce,
                    server_proof,
                    cumulative,
                } => {
                    let ok = self.secret.verify(
                        ProofSide::Server,
                        self.id,
                        id.0,
                        &client_nonce,
                        &server_nonce,
                        &server_proof,
                    );
                    if !ok {
                        // An impostor (or a server that lost the session): drop just this path,
                        // so that whoever answers one connection cannot end the session.
                        self.paths.remove(&id);
                        return Err(FrameError::PathRefused(format!(
                            "the server on path {id} failed its attach proof (it does not know the session secret)"
                        )));
                    }
                    if cumulative > self.next_new {
                        return proto("resume offset beyond what was sent".into());
                    }
                    let client_proof = self.secret.proof(
                        ProofSide::Client,
                        self.id,
                        id.0,
                        &client_nonce,
                        &server_nonce,
                    );
                    let cum = self.recv.contiguous_end();
                    let path = self.paths.get_mut(&id).expect("checked above");
                    path.state = PathState::Active;
                    // The attach timeout is over; the dead-time clock restarts as for any path.
                    path.awaiting_since = path.has_outstanding().then_some(now);
                    path.ping_now = true;
                    // Re-advertise our window: an update may have died with the old path.
                    path.ack_now = true;
                    path.control.push_back(Frame::AttachProof {
                        client_proof,
                        cumulative: cum,
                    });
                    self.on_cumulative(cumulative);
                    self.events.push_back(Event::PathActive(id));
                    Ok(())
                }
                Frame::Error {
                    code: ErrorCode::UnknownSession,
                    reason,
                } => {
                    // The server no longer has the session (it restarted, or gave up waiting):
                    // no flowpath can ever attach again.
                    self.paths.remove(&id);
                    Err(SessionError::PeerError {
                        code: ErrorCode::UnknownSession,
                        reason,
                    }
                    .into())
                }
                Frame::Error { code, reason } => {
                    // The server refused this attach (e.g. busy): the path is gone, the session
                    // may still succeed with another attempt.
                    self.paths.remove(&id);
                    Err(FrameError::PathRefused(format!(
                        "attach refused: {code}: {reason}"
                    )))
                }
                other => proto(format!(
                    "expected CHALLENGE on path {id}, got {}",
                    other.name()
                )),
            };
        }
        match frame {
            Frame::Data { offset, payload } => {
                self.last_activity = now;
                let len = payload.len() as u64;
                self.recv
                    .insert(offset, payload)
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                let path = self.paths.get_mut(&id).expect("checked above");
                path.stats.bytes_received += len;
                path.conn_bytes_received += len;
                path.unacked_bytes += len;
                if path.unacked_bytes >= self.config.ack_every {
                    path.ack_now = true;
                } else if path.ack_deadline.is_none() {
                    path.ack_deadline = Some(now + self.config.ack_delay);
                }
                if self.recv.is_complete() {
                    self.fin_ack_owed = true;
                }
            }
            Frame::Ack {
                cumulative,
                limit,
                path_bytes,
            } => {
                if cumulative > self.next_new {
                    return proto(format!(
                        "ACK for offset {cumulative}, but only {} bytes were sent",
                        self.next_new
                    ));
                }
                path.stats.peer_received = path_bytes;
                self.peer_limit = self.peer_limit.max(limit);
                self.on_cumulative(cumulative);
            }
            Frame::Ping { token } => path.pong_due = Some(token),
            Frame::Ticket { server_nonce } => self.on_ticket(server_nonce)?,
            Frame::Pong { token } => {
                if let Some((t, sent)) = path.ping_outstanding {
                    if t == token {
                        path.stats.on_rtt_sample(now.saturating_sub(sent));
                        path.ping_outstanding = None;
                    }
                }
            }
            Frame::Fin { final_offset } => {
                self.last_activity = now;
                self.fin_path = Some(id);
                self.recv
                    .set_fin(final_offset)
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                if self.recv.is_complete() {
                    self.fin_ack_owed = true;
                }
            }
            Frame::FinAck { final_offset } => {
                if self.local_fin != Some(final_offset) {
                    return proto(format!(
                        "FIN_ACK for offset {final_offset}, which is not our FIN"
                    ));
                }
                self.local_fin_acked = true;
                self.fin_unsent = false;
                for p in self.paths.values_mut() {
                    p.fin_inflight = false;
                }
                self.on_cumulative(final_offset);
            }
            Frame::Error { code, reason } => {
                return Err(SessionError::PeerError { code, reason }.into())
            }
            other => return proto(format!("unexpected {} on an active path", other.name())),
        }
        if let Some(path) = self.paths.get_mut(&id) {
            // The peer spoke: restart the dead-time clock if it still owes us something.
            path.awaiting_since = path.has_outstanding().then_some(now);
        }
        self.check_finished();
        Ok(())
    }

    /// Applies a cumulative acknowledgement of our stream.
    pub(super) fn on_cumulative(&mut self, cum: u64) {
        self.send.ack(cum);
        self.retransmit.remove_below(cum);
        // The peer's word is newer than any path loss: what is left to re-send is missing.
        self.resend_confirmed = true;
        for p in self.paths.values_mut() {
            p.on_cumulative(cum);
        }
    }

    pub(super) fn check_finished(&mut self) {
        if !self.peer_finished_reported && self.recv.is_finished() {
            self.peer_finished_reported = true;
            self.events.push_back(Event::PeerFinished);
        }
        if !self.finished && self.local_fin_acked && self.recv.is_finished() && self.fin_ack_sent {
            self.finished = true;
            self.events.push_back(Event::Finished);
        }
    }

    pub(super) fn fail(&mut self, e: SessionError) {
        if self.error.is_none() {
            if let Some((code, reason)) = e.wire() {
                for p in self.paths.values_mut() {
                    p.control.push_back(Frame::Error {
                        code,
                        reason: reason.clone(),
                    });
                }
            }
            self.events.push_back(Event::Failed(e.clone()));
            self.error = Some(e);
        }
    }

    /// Ends the session at once, telling the peer why (`why` is phrased for the peer, e.g.
    /// "interrupted by its user").
    pub fn abort(&mut self, why: impl Into<String>) {
        self.fail(SessionError::Aborted(why.into()));
    }
}
