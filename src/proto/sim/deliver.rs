//! The harness's receiving side: bytes due on a connection are deframed and handed to the
//! session, or (on the server, before a connection carries a path) answered the way the
//! runtime would: HELLO(attach) with a challenge, the proof with `complete_attach`,
//! HELLO(resume) with RESUMED, anything unknown with ERROR.

use super::net::{ClientEnd, ConnState, ServerEnd};
use super::{with_preamble, AttachRecord, Side, Sim};
use crate::proto::session::{FrameError, PendingAttach, SessionError};
use crate::proto::{DeframeError, ErrorCode, Frame, PathId};

impl Sim {
    pub(super) fn deliver_due(&mut self) {
        for c in 0..self.conns.len() {
            if self.conns[c].state == ConnState::Dead {
                continue;
            }
            let to_server = self.conns[c].c2s.take_due(self.now);
            let to_client = self.conns[c].s2c.take_due(self.now);
            if self.conns[c].state == ConnState::Blackholed {
                continue;
            }
            // A process that exited reads nothing.
            if !self.exited[Side::Server.idx()] {
                for bytes in to_server {
                    self.server_receive(c, &bytes);
                }
            }
            if !self.exited[Side::Client.idx()] {
                for bytes in to_client {
                    self.client_receive(c, &bytes);
                }
            }
            let conn = &self.conns[c];
            let closing = matches!(conn.server_end, ServerEnd::Closing);
            if closing && conn.state == ConnState::Open && conn.s2c.queued() == 0 {
                self.kill_conn(c); // the refused client reads the ERROR, then EOF
            }
        }
    }

    fn server_receive(&mut self, c: usize, bytes: &[u8]) {
        self.conns[c].server_rx.extend(bytes);
        while self.conns[c].state == ConnState::Open {
            if matches!(self.conns[c].server_end, ServerEnd::Closing) {
                return;
            }
            match self.next_frame(c, Side::Server) {
                Some(frame) => self.server_frame(c, frame),
                None => return,
            }
        }
    }

    /// The next whole frame `side` has received on connection `c`. None if there is none yet,
    /// or if a record did not authenticate: that end logs it and drops the connection.
    fn next_frame(&mut self, c: usize, side: Side) -> Option<Frame> {
        let conn = &mut self.conns[c];
        let (rx, end) = match side {
            Side::Client => (&mut conn.client_rx, "client"),
            Side::Server => (&mut conn.server_rx, "server"),
        };
        match rx.next_frame() {
            Ok(frame) => frame,
            Err(e @ DeframeError::Record(_)) => {
                self.log_error(side, SessionError::Protocol(e.to_string()));
                self.kill_conn(c);
                None
            }
            Err(e) => panic!("{end} could not deframe connection {c}: {e}"),
        }
    }

    fn server_frame(&mut self, c: usize, frame: Frame) {
        match std::mem::replace(&mut self.conns[c].server_end, ServerEnd::Closing) {
            ServerEnd::AwaitHello => self.server_on_hello(c, frame),
            ServerEnd::Challenged { hello, pending } => {
                self.server_on_proof(c, hello, pending, frame)
            }
            ServerEnd::Attached(p) => {
                self.conns[c].server_end = ServerEnd::Attached(p);
                if self.server_conn.get(&p) == Some(&c) {
                    let rx = &mut self.conns[c].server_rx;
                    if let Err(e) = self.server.handle_frame(p, frame, rx, self.now) {
                        self.log_error(Side::Server, logged(e));
                    }
                }
            }
            ServerEnd::Closing => {}
        }
    }

    /// The runtime's part of an attach: look the session up, challenge.
    fn server_on_hello(&mut self, c: usize, hello: Frame) {
        if let Frame::HelloResume { session_id, .. } = hello {
            self.server_on_resume(c, session_id, hello);
            return;
        }
        let Frame::HelloAttach { session_id, .. } = hello else {
            panic!(
                "server got {} as the first frame of connection {c}",
                hello.name()
            );
        };
        if session_id != self.server.id() {
            self.refuse(c, ErrorCode::UnknownSession);
            return;
        }
        match self.server.challenge_attach(&hello, &mut self.rng) {
            Ok((pending, mut challenge)) => {
                if std::mem::take(&mut self.forge_next_challenge) {
                    if let Frame::Challenge { server_proof, .. } = &mut challenge {
                        server_proof[0] ^= 0x01;
                    }
                }
                self.server_send(c, &challenge);
                self.conns[c].server_end = ServerEnd::Challenged { hello, pending };
            }
            Err(_) => self.refuse(c, ErrorCode::UnknownSession),
        }
    }

    /// The runtime's part of an attach: verify the proof, route the connection.
    fn server_on_proof(
        &mut self,
        c: usize,
        hello: Frame,
        pending: PendingAttach,
        mut proof: Frame,
    ) {
        if std::mem::take(&mut self.tamper_next_attach_proof) {
            if let Frame::AttachProof { client_proof, .. } = &mut proof {
                client_proof[7] ^= 0x80;
            }
        }
        let rx = &mut self.conns[c].server_rx;
        let result = self.server.complete_attach(pending, &proof, rx, self.now);
        match &result {
            Ok(p) => self.server_attached(c, *p),
            Err(_) => self.refuse(c, ErrorCode::AuthFailed),
        }
        self.log.attaches.push(AttachRecord {
            conn: c,
            at: self.now,
            hello,
            proof,
            result,
        });
    }

    /// The runtime's part of a one-flight attach: check the HELLO(resume), answer RESUMED.
    fn server_on_resume(&mut self, c: usize, session_id: u64, hello: Frame) {
        if session_id != self.server.id() {
            self.refuse(c, ErrorCode::UnknownSession);
            return;
        }
        let rx = &mut self.conns[c].server_rx;
        let result = self.server.resume_attach(&hello, rx, self.now);
        let result = match result {
            Ok((p, resumed)) => {
                self.server_send(c, &resumed);
                self.server_attached(c, p);
                Ok(p)
            }
            Err(e) => {
                self.refuse(c, ErrorCode::AuthFailed);
                Err(e)
            }
        };
        self.log.attaches.push(AttachRecord {
            conn: c,
            at: self.now,
            hello: hello.clone(),
            proof: hello,
            result,
        });
    }

    /// Connection `c` now carries path `p`; the connection it replaces is closed.
    fn server_attached(&mut self, c: usize, p: PathId) {
        self.conns[c].server_end = ServerEnd::Attached(p);
        if let Some(old) = self.server_conn.insert(p, c) {
            // The attach retired the old path; the server closes its connection.
            let conn = &mut self.conns[old];
            conn.state = ConnState::Dead;
            conn.c2s.clear();
            conn.s2c.clear();
        }
    }

    /// Sends ERROR(`code`) and closes the connection once it has been delivered.
    fn refuse(&mut self, c: usize, code: ErrorCode) {
        let reason = code.to_string();
        self.server_send(c, &Frame::Error { code, reason });
        self.conns[c].server_end = ServerEnd::Closing;
        self.log.refusals.push((c, code));
    }

    /// Writes one harness-made server frame (with the preamble if it is the first).
    fn server_send(&mut self, c: usize, frame: &Frame) {
        let conn = &mut self.conns[c];
        let bytes = with_preamble(!conn.server_preamble_sent, frame);
        conn.server_preamble_sent = true;
        conn.s2c.write(self.now, bytes);
        *self.log.frames_sent[1].entry(frame.name()).or_default() += 1;
    }

    fn client_receive(&mut self, c: usize, bytes: &[u8]) {
        self.conns[c].client_rx.extend(bytes);
        while self.conns[c].state == ConnState::Open {
            let Some(frame) = self.next_frame(c, Side::Client) else {
                return;
            };
            let path = self.conns[c].path;
            if let ClientEnd::Scripted { inbox } = &mut self.conns[c].client_end {
                inbox.push(frame);
                continue;
            }
            if self.client_conn.get(&path) != Some(&c) {
                continue; // a connection the client has abandoned
            }
            let rx = &mut self.conns[c].client_rx;
            if let Err(e) = self.client.handle_frame(path, frame, rx, self.now) {
                let refused = matches!(e, FrameError::PathRefused(_));
                self.log_error(Side::Client, logged(e));
                if refused {
                    assert!(
                        self.client.path_stats(path).is_none(),
                        "a refused path is removed"
                    );
                    // The client dropped this path (e.g. an impostor): it closes the connection.
                    self.client_conn.remove(&path);
                    self.kill_conn(c);
                }
            }
        }
    }
}

/// How a rejected frame is recorded in the log (a refused path as a protocol error).
fn logged(e: FrameError) -> SessionError {
    match e {
        FrameError::Session(e) => e,
        FrameError::PathRefused(m) => SessionError::Protocol(m),
    }
}
