//! The harness's sending side: each session is asked for frames on each connection with
//! send-buffer room, and a frame being written can trigger a scheduled fault.

use rand::seq::SliceRandom;

use super::net::{ClientEnd, ConnState, ServerEnd};
use super::{Fault, FaultOnFrame, OnFrame, Side, Sim};
use crate::proto::{Deframer, OutQueue};

impl Sim {
    /// Asks each session for frames on each connection with send-buffer room, in a seeded
    /// random order (as a runtime's tasks would run).
    pub(super) fn transmit_all(&mut self) {
        let mut order: Vec<(usize, Side)> = (0..self.conns.len())
            .filter(|&c| self.conns[c].state != ConnState::Dead)
            .flat_map(|c| [(c, Side::Client), (c, Side::Server)])
            .collect();
        order.shuffle(&mut self.rng);
        for (c, side) in order {
            self.transmit(c, side);
        }
    }

    fn transmit(&mut self, c: usize, side: Side) {
        let conn = &self.conns[c];
        if conn.state == ConnState::Dead || self.exited[side.idx()] {
            return;
        }
        let path = match side {
            Side::Client => match conn.client_end {
                ClientEnd::Session if self.client_conn.get(&conn.path) == Some(&c) => conn.path,
                _ => return,
            },
            Side::Server => match conn.server_end {
                ServerEnd::Attached(p) if self.server_conn.get(&p) == Some(&c) => p,
                _ => return,
            },
        };
        let pipe = match side {
            Side::Client => &conn.c2s,
            Side::Server => &conn.s2c,
        };
        let room = self.cfg.sndbuf.saturating_sub(pipe.backlog(self.now));
        if room == 0 {
            return;
        }
        let mut queue = OutQueue::default();
        let now = self.now;
        if !self
            .session(side)
            .poll_transmit(path, now, &mut queue, room)
        {
            return;
        }
        let mut buf = queue.take_bytes();
        // Encrypted: only the harness's own frames are named (the session's are sealed).
        let names = if self.client.is_encrypted() {
            Vec::new()
        } else {
            frame_names(&buf)
        };
        if self.corrupt_next == Some((path, side)) && !buf.is_empty() {
            self.corrupt_next = None;
            let mut b = buf.to_vec();
            let i = b.len() / 2;
            b[i] ^= 0x04;
            buf = b.into();
        }
        let conn = &mut self.conns[c];
        match side {
            Side::Client => conn.c2s.write(self.now, buf),
            Side::Server => conn.s2c.write(self.now, buf),
        }
        for name in &names {
            *self.log.frames_sent[side.idx()].entry(name).or_default() += 1;
        }
        self.maybe_kill_on_frame(c, side, &names);
        self.maybe_fault_on_frame(c, side, &names);
    }

    fn maybe_kill_on_frame(&mut self, c: usize, side: Side, names: &[&'static str]) {
        let Some(k) = &self.cfg.kill_on_frame else {
            return;
        };
        if k.side != side || !names.contains(&k.frame) {
            return;
        }
        let reattach_after = k.reattach_after;
        self.cfg.kill_on_frame = None;
        let (path, link) = (self.conns[c].path, self.conns[c].link);
        self.kill_conn(c);
        if let Some(d) = reattach_after {
            self.schedule(self.now + d, Fault::Reattach { path, link });
        }
    }

    fn maybe_fault_on_frame(&mut self, c: usize, side: Side, names: &[&'static str]) {
        let hit = |t: &FaultOnFrame| t.side == side && names.contains(&t.frame);
        let Some(i) = self.cfg.on_frame.iter().position(hit) else {
            return;
        };
        let trigger = self.cfg.on_frame.remove(i);
        self.log.triggered.push((self.now, side, trigger.frame));
        let (path, link) = (self.conns[c].path, self.conns[c].link);
        match trigger.action {
            OnFrame::Kill { reattach_after } => {
                self.kill_conn(c);
                if let Some(d) = reattach_after {
                    self.schedule(self.now + d, Fault::Reattach { path, link });
                }
            }
            OnFrame::Reattach => self.apply_fault(Fault::Reattach { path, link }),
            OnFrame::Fault(f) => self.apply_fault(f),
        }
    }
}

/// Names of the whole frames in `buf` (as written by `poll_transmit`).
fn frame_names(buf: &[u8]) -> Vec<&'static str> {
    let mut d = Deframer::after_preamble();
    d.extend(buf);
    let mut names = Vec::new();
    while let Some(frame) = d.next_frame().expect("a session emits well-formed frames") {
        names.push(frame.name());
    }
    assert_eq!(d.buffered(), 0, "poll_transmit emitted a partial frame");
    names
}
