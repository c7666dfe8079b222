//! One-flight reattach with tickets: the server hands out single-use nonces on an attached
//! flowpath (TICKET); a later flowpath attaches with one HELLO(resume) that proves knowledge of
//! the secret over a ticket, and may carry stream frames right behind it. That saves the
//! CHALLENGE round trip of HELLO(attach) when a flowpath moves.

use std::collections::VecDeque;
use std::time::Duration;

use super::{AttachError, FrameError, Role, Session, SessionError};
use crate::proto::auth::ProofSide;
use crate::proto::deframer::Deframer;
use crate::proto::frame::{Frame, NONCE_LEN};
use crate::proto::path::{PathId, PathState};

/// Most tickets outstanding (server) or held (client); the oldest are dropped first.
const MAX_TICKETS: usize = 8;

/// Resume tickets: the server's side of them or the client's.
#[derive(Debug)]
pub(super) enum Tickets {
    /// Server: tickets are numbered; the nonce of ticket `i` is derived from the secret.
    Issued {
        /// The next ticket's index (tickets issued so far).
        next: u64,
        /// Indices of tickets issued and not yet used, oldest first.
        outstanding: VecDeque<u64>,
    },
    /// Client: ticket nonces received and not yet used, oldest first.
    Held(VecDeque<[u8; NONCE_LEN]>),
}

impl Tickets {
    /// No tickets yet, for the end that is `role`.
    pub(super) fn new(role: Role) -> Tickets {
        match role {
            // The client holds what the server sends it.
            Role::Client => Tickets::Held(VecDeque::new()),
            // The server numbers what it issues.
            Role::Server => Tickets::Issued {
                next: 0,
                outstanding: VecDeque::new(),
            },
        }
    }
}

impl Session {
    /// Server: queues a fresh TICKET on path `id`.
    pub(super) fn issue_ticket(&mut self, id: PathId) {
        if !self.config.resume_tickets {
            return;
        }
        let Tickets::Issued { next, outstanding } = &mut self.tickets else {
            return; // the client issues none
        };
        let index = *next;
        *next += 1;
        outstanding.push_back(index);
        if outstanding.len() > MAX_TICKETS {
            outstanding.pop_front();
        }
        let server_nonce = self.secret.ticket(index);
        if let Some(p) = self.paths.get_mut(&id) {
            p.control.push_back(Frame::Ticket { server_nonce });
        }
    }

    /// Server: checks a HELLO(resume) for this session. On success the path is active
    /// (replacing any older connection with the same id); send the returned RESUMED first.
    /// `rx` is the deframer of the connection the HELLO came on. Encrypted: the client's
    /// records follow its HELLO, and `rx` opens them from now on.
    pub fn resume_attach(
        &mut self,
        hello: &Frame,
        rx: &mut Deframer,
        now: Duration,
    ) -> Result<(PathId, Frame), AttachError> {
        let Frame::HelloResume {
            path_id,
            client_nonce,
            server_nonce,
            client_proof,
            cumulative,
            ..
        } = hello
        else {
            return Err(AttachError::Unexpected(hello.name()));
        };
        if self.error.is_some() {
            return Err(AttachError::SessionEnded);
        }
        let Tickets::Issued { outstanding, .. } = &self.tickets else {
            return Err(AttachError::StaleTicket); // the client issues none
        };
        let slot = outstanding
            .iter()
            .position(|&i| self.secret.ticket(i) == *server_nonce)
            .ok_or(AttachError::StaleTicket)?;
        self.check_client_attach(
            *path_id,
            client_nonce,
            server_nonce,
            client_proof,
            *cumulative,
        )?;
        // Single use: a replay of this HELLO finds the ticket gone.
        if let Tickets::Issued { outstanding, .. } = &mut self.tickets {
            outstanding.remove(slot);
        }
        let id = PathId(*path_id);
        let ours = self.recv.contiguous_end();
        let server_proof = self.secret.proof(
            ProofSide::Server,
            self.id,
            id.0,
            client_nonce,
            server_nonce,
            ours,
        );
        let resumed = Frame::Resumed {
            server_proof,
            cumulative: ours,
        };
        self.activate_attached(id, *cumulative, now);
        self.key_path_now(id, client_nonce, server_nonce, rx);
        Ok((id, resumed))
    }

    /// Client: the HELLO(resume) replacing path `id`, if we hold a ticket (the path is then
    /// waiting for RESUMED and may already carry stream frames).
    pub(super) fn resume_hello(
        &mut self,
        id: PathId,
        client_nonce: [u8; NONCE_LEN],
        now: Duration,
    ) -> Option<Frame> {
        if !self.config.resume_tickets {
            return None;
        }
        let Tickets::Held(held) = &mut self.tickets else {
            return None; // the server holds none
        };
        let server_nonce = held.pop_front()?;
        let client_proof = self.secret.proof(
            ProofSide::Client,
            self.id,
            id.0,
            &client_nonce,
            &server_nonce,
            self.recv.contiguous_end(),
        );
        let state = PathState::AwaitResumed {
            client_nonce,
            server_nonce,
        };
        let mut path = self.fresh_path(id, state, now);
        // Encrypted: our records follow the HELLO(resume) at once; the server's follow its
        // RESUMED.
        if let Some((seal, open)) = self.path_keys(id, &client_nonce, &server_nonce) {
            path.seal = Some(seal);
            path.opener_after_reply = Some(open);
        }
        self.paths.insert(id, path);
        Some(Frame::HelloResume {
            session_id: self.id,
            path_id: id.0,
            client_nonce,
            server_nonce,
            client_proof,
            cumulative: self.recv.contiguous_end(),
        })
    }

    /// Client: a TICKET arrived.
    pub(super) fn on_ticket(&mut self, server_nonce: [u8; NONCE_LEN]) -> Result<(), FrameError> {
        let Tickets::Held(held) = &mut self.tickets else {
            return Err(SessionError::Protocol("TICKET sent to the server".into()).into());
        };
        held.push_back(server_nonce);
        if held.len() > MAX_TICKETS {
            held.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
