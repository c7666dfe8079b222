//! Inbound frames: data into the reorder buffer, feedback into the send state.

use std::time::Duration;

use super::{Event, FrameError, Session, SessionError};
use crate::proto::deframer::Deframer;
use crate::proto::frame::Frame;
use crate::proto::path::{PathId, PathState};

impl Session {
    /// Processes one frame received on path `id`, cut by `rx` (the deframer of that path's
    /// connection: encrypted sessions install the peer's record opener in it when the frame
    /// says the peer's records start next). On [`FrameError::Session`] the session has
    /// failed: send whatever [`Session::poll_transmit`] still yields (an ERROR) and close. On
    /// [`FrameError::PathRefused`] close just that path's connection.
    pub fn handle_frame(
        &mut self,
        id: PathId,
        frame: Frame,
        rx: &mut Deframer,
        now: Duration,
    ) -> Result<(), FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone().into());
        }
        let r = self.handle_frame_inner(id, frame, rx, now);
        if r.is_ok() {
            self.heard_from_peer = true;
        }
        if let Err(FrameError::Session(e)) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn handle_frame_inner(
        &mut self,
        id: PathId,
        frame: Frame,
        rx: &mut Deframer,
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
            return self.on_attach_reply(id, client_nonce, Some(server_nonce), frame, rx, now);
        }
        if let PathState::AwaitChallenge { client_nonce } = path.state {
            return self.on_attach_reply(id, client_nonce, None, frame, rx, now);
        }
        match frame {
            Frame::Data { offset, payload } => {
                self.last_activity = now;
                let len = payload.len() as u64;
                let new = self
                    .recv
                    .insert(offset, payload)
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                path.stats.bytes_received += len;
                path.stats.bytes_new += new as u64;
                path.conn_bytes_received += len;
                path.unacked_bytes += len;
                if path.unacked_bytes >= self.config.ack_every {
                    path.ack_now = true;
                } else if path.ack_deadline.is_none() {
                    path.ack_deadline = Some(now + self.config.ack_delay);
                }
                if self.recv.is_complete() {
                    self.recv_close.owe_fin_ack();
                }
                if let Some((attached, at, from)) = self.awaiting_delivery {
                    if self.recv.contiguous_end() > from {
                        self.awaiting_delivery = None;
                        self.events.push_back(Event::DeliveryResumed {
                            path: attached,
                            after: now.saturating_sub(at),
                        });
                    }
                }
            }
            Frame::Ack {
                cumulative,
                limit,
                path_bytes,
            } => {
                if cumulative > self.send.sent_once() {
                    return proto(format!(
                        "ACK for offset {cumulative}, but only {} bytes were sent",
                        self.send.sent_once()
                    ));
                }
                path.stats.on_peer_received(path_bytes, now);
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
                    self.recv_close.owe_fin_ack();
                }
            }
            Frame::FinAck { final_offset } => {
                if !self.send_close.fin_acked(final_offset) {
                    return proto(format!(
                        "FIN_ACK for offset {final_offset}, which is not our FIN"
                    ));
                }
                for p in self.paths.values_mut() {
                    p.fin_inflight = false;
                }
                self.on_cumulative(final_offset);
            }
            Frame::Error { code, reason } => return Err(self.peer_error(code, reason).into()),
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
        for p in self.paths.values_mut() {
            p.on_cumulative(cum);
        }
    }

    pub(super) fn check_finished(&mut self) {
        if !self.peer_finished_reported && self.recv.is_finished() {
            self.peer_finished_reported = true;
            self.events.push_back(Event::PeerFinished);
        }
        if !self.finished
            && self.send_close.is_acked()
            && self.recv.is_finished()
            && self.recv_close.answered()
        {
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
