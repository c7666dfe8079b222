//! Checks and failure reports of a simulation.

use std::fmt::Write as _;

use super::net::ConnState;
use super::Sim;
use crate::proto::{AttachError, ErrorCode, Frame, SessionError};

impl Sim {
    /// Panics if either session has failed.
    pub fn assert_no_errors(&self) {
        for (name, s) in [("client", &self.client), ("server", &self.server)] {
            if let Some(e) = s.error() {
                panic!("{name} session failed: {e}\n{}", self.describe());
            }
        }
    }

    /// Panics unless each application read exactly what the other wrote.
    pub fn assert_streams_identical(&self) {
        let pairs = [("client → server", 0, 1), ("server → client", 1, 0)];
        for (dir, from, to) in pairs {
            let (sent, got) = (&self.apps[from].data, &self.apps[to].received);
            if let Some(i) = sent.iter().zip(got.iter()).position(|(a, b)| a != b) {
                panic!(
                    "{dir}: streams differ first at byte {i}\n{}",
                    self.describe()
                );
            }
            assert_eq!(
                sent.len(),
                got.len(),
                "{dir}: wrote {} bytes, read {}\n{}",
                sent.len(),
                got.len(),
                self.describe()
            );
        }
    }

    /// Panics unless the last attach came on scripted connection `c`, failed its proof, and
    /// `c` was answered (second frame) ERROR(authentication failed).
    pub fn assert_refused_for_bad_proof(&self, c: usize) {
        let record = self.log.attaches.last().unwrap();
        assert_eq!(
            (record.conn, &record.result),
            (c, &Err(AttachError::BadProof))
        );
        assert!(matches!(
            self.scripted_inbox(c)[1],
            Frame::Error {
                code: ErrorCode::AuthFailed,
                ..
            }
        ));
    }

    /// Runs until the client session fails (`what` names that in a timeout); panics unless it
    /// failed on the server's ERROR(`code`).
    pub fn run_until_client_fails(&mut self, what: &str, code: ErrorCode) {
        self.run_until(what, |s| s.client.error().is_some());
        assert!(
            matches!(
                self.client.error(),
                Some(SessionError::PeerError { code: c, .. }) if *c == code
            ),
            "{:?}",
            self.client.error()
        );
    }

    /// A multi-line summary of the state, for failure messages.
    pub fn describe(&self) -> String {
        let mut d = String::new();
        let _ = writeln!(
            d,
            "seed {} at {:?} after {} steps",
            self.cfg.seed, self.now, self.steps
        );
        for (name, s, app) in [
            ("client", &self.client, &self.apps[0]),
            ("server", &self.server, &self.apps[1]),
        ] {
            let paths: Vec<_> = s.active_paths().collect();
            let _ = writeln!(
                d,
                "  {name}: app wrote {}/{} read {}; session written {} acked {} read {} \
                 readable {}; write_finished {} peer_finished {} finished {} error {:?}; \
                 active paths {paths:?}; timeout {:?}",
                app.written,
                app.data.len(),
                app.received.len(),
                s.bytes_written(),
                s.bytes_acked(),
                s.bytes_read(),
                s.readable(),
                s.write_finished(),
                s.peer_finished(),
                s.is_finished(),
                s.error(),
                s.poll_timeout(),
            );
        }
        for (i, c) in self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state != ConnState::Dead)
        {
            let _ = writeln!(
                d,
                "  conn {i}: path {} {:?} server {:?}, c2s {} segs, s2c {} segs",
                c.path,
                c.state,
                c.server_end_name(),
                c.c2s.queued(),
                c.s2c.queued()
            );
        }
        self.describe_mobility(&mut d);
        let _ = writeln!(d, "  frames sent: {:?}", self.log.frames_sent);
        let _ = writeln!(d, "  errors: {:?}", self.log.errors);
        let _ = write!(d, "  pending faults: {:?}", self.faults);
        d
    }
}
