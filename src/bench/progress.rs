//! What one end of a test has seen so far, in either direction: the meters of the direction it
//! receives and the one it sends, fed by the transport's events and by timer wake-ups. Shared
//! by the client and the listener's bench server.

use std::time::{Duration, Instant};

use super::app::{Event, Link};
use super::meter::{Mark, Meter, Role};
use super::model::{Interval, Side};
use super::wire::Control;

/// What an event meant to the caller.
pub(super) enum Step {
    /// Nothing to do.
    Nothing,
    /// An interval of the direction we receive ended (the last, partial one).
    Interval(Interval),
    /// A control message for the caller's logic.
    Control(Control),
}

/// One end's meters.
pub(super) struct Progress {
    receives: bool,
    sends: bool,
    interval: Option<Duration>,
    omit: Duration,
    recv: Option<Meter>,
    send: Option<Meter>,
    /// Our totals as receiver, once the peer's END arrived.
    pub(super) received: Option<Side>,
    /// Our totals as sender, once our END went out.
    pub(super) sent: Option<Side>,
}

impl Progress {
    /// An end that receives and/or sends data, reporting its receiving every `interval`.
    pub(super) fn new(
        receives: bool,
        sends: bool,
        interval: Option<Duration>,
        omit: Duration,
    ) -> Self {
        Progress {
            receives,
            sends,
            interval,
            omit,
            recv: None,
            send: None,
            received: None,
            sent: None,
        }
    }

    /// Both directions this end takes part in are complete.
    pub(super) fn done(&self) -> bool {
        (!self.receives || self.received.is_some()) && (!self.sends || self.sent.is_some())
    }

    /// When a meter wants a mark next.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let a = self.recv.as_ref().and_then(|m| m.next_wake());
        let b = self.send.as_ref().and_then(|m| m.next_wake());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sleeps until [`Progress::next_wake`] (forever if none).
    pub(super) async fn sleep(&self) {
        match self.next_wake() {
            Some(t) => tokio::time::sleep_until(t.into()).await,
            None => std::future::pending().await,
        }
    }

    /// Takes the marks that are due; returns the interval of the direction we receive, if
    /// one ended.
    pub(super) async fn on_wake(&mut self, link: &Link) -> Option<Interval> {
        let now = Instant::now();
        let mut out = None;
        if self
            .recv
            .as_ref()
            .and_then(|m| m.next_wake())
            .is_some_and(|t| t <= now)
        {
            let snap = link.snapshot().await;
            let mark = Mark::new(Role::Receiver, Instant::now(), link.received(), &snap);
            out = self.recv.as_mut().and_then(|m| m.on_mark(&mark, &snap));
        }
        if self
            .send
            .as_ref()
            .and_then(|m| m.next_wake())
            .is_some_and(|t| t <= now)
        {
            let snap = link.snapshot().await;
            let mark = Mark::new(Role::Sender, Instant::now(), link.sent(), &snap);
            if let Some(m) = self.send.as_mut() {
                m.on_mark(&mark, &snap);
            }
        }
        out
    }

    /// Handles an event from the transport; an error is the peer's breach of the protocol
    /// (or a test that ended within --omit).
    pub(super) async fn on_event(&mut self, link: &Link, ev: Event) -> Result<Step, String> {
        match ev {
            Event::FirstData(at) => {
                if !self.receives || self.recv.is_some() {
                    return Err("data came from the end that should not send".into());
                }
                let origin = Mark::origin(at);
                self.recv = Some(Meter::new(Role::Receiver, origin, self.interval, self.omit));
            }
            Event::SendStarted(at) => {
                let origin = Mark::origin(at);
                self.send = Some(Meter::new(Role::Sender, origin, None, self.omit));
            }
            Event::End { at, bytes } => {
                let Some(m) = self.recv.as_mut().filter(|_| self.received.is_none()) else {
                    return Err("END came without data before it".into());
                };
                let snap = link.snapshot().await;
                let mark = Mark::new(Role::Receiver, at, bytes, &snap);
                let (last, side) = m.finish(&mark, &snap)?;
                self.received = Some(side);
                if let Some(iv) = last {
                    return Ok(Step::Interval(iv));
                }
            }
            Event::SendEnded { at, bytes } => {
                if let Some(m) = self.send.as_mut() {
                    let snap = link.snapshot().await;
                    let mark = Mark::new(Role::Sender, at, bytes, &snap);
                    self.sent = Some(m.finish(&mark, &snap)?.1);
                }
            }
            Event::Control(c) => return Ok(Step::Control(c)),
            Event::Broken(why) => return Err(why),
            Event::Closed => return Err("the peer ended its side before the test was over".into()),
        }
        Ok(Step::Nothing)
    }
}
