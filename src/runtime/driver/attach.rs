//! New flowpaths: the server challenges and verifies attaching connections; the client
//! replaces paths that broke.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::paths::{read_frames_once, write_out};
use super::{AttachRequest, Driver, PathConn, PendingConn};
use crate::proto::{ErrorCode, Frame, PathId};
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::conn::FlowConn;
use crate::runtime::reconnect::ReplaceEvent;

/// How long a server waits for the ATTACH_PROOF after its CHALLENGE.
const PROOF_TIMEOUT: Duration = Duration::from_secs(10);

impl<I: AppSource, O: AppSink> Driver<I, O> {
    pub(super) fn poll_incoming(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let Some(rx) = self.incoming.as_mut() else {
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
                            self.pending.push(PendingConn {
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
                    self.incoming = None;
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
        match self.session.resume_attach(hello, now) {
            Ok((id, resumed)) => {
                tracing::info!("path {id} resumed from {}", conn.peer);
                conn.queue(&resumed);
                if let Some(o) = self.session.take_opener(id) {
                    conn.deframer.set_opener(o);
                }
                self.conns.retain(|c| c.id != id);
                self.conns.push(PathConn {
                    id,
                    conn,
                    attached: true,
                });
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
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
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
                        let p = self.pending.swap_remove(i);
                        let now = self.now();
                        match self.session.complete_attach(p.pending, &frame, now) {
                            Ok(id) => {
                                tracing::info!("path {id} attached from {}", p.conn.peer);
                                let mut conn = p.conn;
                                if let Some(o) = self.session.take_opener(id) {
                                    conn.deframer.set_opener(o);
                                }
                                self.conns.retain(|c| c.id != id);
                                self.conns.push(PathConn {
                                    id,
                                    conn,
                                    attached: true,
                                });
                            }
                            Err(e) => {
                                tracing::warn!("refusing flowpath from {}: {e}", p.conn.peer);
                                tokio::spawn(p.conn.refuse(ErrorCode::AuthFailed, e.to_string()));
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
                self.pending.swap_remove(i);
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }

    /// Client: starts replacing path `id` (on the same interface, if it has one), unless the
    /// session no longer needs it or the path was closed on purpose.
    pub(super) fn replace_path(&mut self, id: PathId) {
        let needed = self.session_needs_network() && self.session.error().is_none();
        let Some(bind) = self.slot(id) else {
            return;
        };
        let Some(r) = self.replacer.as_mut() else {
            return;
        };
        if needed && !r.is_replacing(id) {
            tracing::info!("path {id}: reconnecting");
            r.start(id, bind);
        }
    }

    /// Client: progress of replacements.
    pub(super) fn poll_replacer(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let Some(ev) = self.replacer.as_mut().and_then(|r| r.poll(cx)) else {
                return progress;
            };
            progress = true;
            match ev {
                ReplaceEvent::Connected(id, mut conn) => {
                    // HELLO(resume) when we hold a ticket (stream frames may follow at once),
                    // else HELLO(attach); the answer comes through the normal read loop.
                    let now = self.now();
                    let hello = self.session.reattach_path(id, &mut self.rng, now);
                    tracing::debug!("path {id}: {} to {}", hello.name(), conn.peer);
                    conn.queue_preamble();
                    conn.queue(&hello);
                    self.conns.push(PathConn {
                        id,
                        conn: *conn,
                        attached: false,
                    });
                }
                ReplaceEvent::Failed(id, why, changed) => {
                    tracing::info!("path {id}: reconnect failed: {why}");
                    self.last_path_error = why.to_string();
                    self.retry_later(id, changed);
                }
                ReplaceEvent::RetryDue(id) => {
                    if let Some(r) = self.replacer.as_mut() {
                        r.clear_slot(id);
                    }
                    self.replace_path(id);
                }
            }
        }
    }

    fn retry_later(&mut self, id: PathId, changed_meanwhile: bool) {
        if let Some(r) = self.replacer.as_mut() {
            r.retry_later(id, changed_meanwhile);
        }
    }
}
