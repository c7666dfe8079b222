//! A process that exits: its kernel closes each of its connections in order (TCP FIN) once
//! the bytes it wrote have been delivered. The harness then plays the surviving end's runtime,
//! which reports an orderly close of a direct flowpath with `path_ended_by_peer`.

use super::net::{ConnState, ServerEnd};
use super::{Side, Sim};

impl Sim {
    /// `side`'s process exits now: it is no longer driven, bytes sent to it are dropped, and
    /// each of its connections ends in order once what it wrote has arrived.
    pub fn exit(&mut self, side: Side) {
        self.exited[side.idx()] = true;
        for conn in self.conns.iter_mut().filter(|c| c.state == ConnState::Open) {
            conn.fin_from = Some(side);
        }
    }

    /// Delivers the FIN of every connection whose exited end's bytes have all arrived.
    pub(super) fn deliver_fins(&mut self) {
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            let Some(from) = conn.fin_from else {
                continue;
            };
            let pipe = match from {
                Side::Client => &conn.c2s,
                Side::Server => &conn.s2c,
            };
            if conn.state != ConnState::Open || pipe.queued() > 0 {
                continue;
            }
            let path = conn.path;
            let server_path = match conn.server_end {
                ServerEnd::Attached(p) => Some(p),
                _ => None,
            };
            self.conns[c].state = ConnState::Dead;
            match from.peer() {
                Side::Server => {
                    if let Some(p) = server_path.filter(|p| self.server_conn.get(p) == Some(&c)) {
                        self.server_conn.remove(&p);
                        self.server.path_ended_by_peer(p);
                    }
                }
                Side::Client => {
                    if self.client_conn.get(&path) == Some(&c) {
                        self.client_conn.remove(&path);
                        self.client.path_ended_by_peer(path);
                    }
                }
            }
        }
    }
}
