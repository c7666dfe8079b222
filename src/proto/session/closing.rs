//! The close handshake of each direction, as explicit states (see "Closing" in the module doc
//! of [`crate::proto`]): our FIN going out and being acknowledged, and the peer's FIN being
//! answered with FIN_ACK. Every transition is one `match` with a comment per arm.

/// How far our direction of the stream has closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SendClose {
    /// The application may still write; no FIN yet.
    Open,
    /// The application closed its side: the stream is `fin` bytes long. A FIN must go out on
    /// some path, after every byte below `fin` has been sent (first time, or again because
    /// the path that carried it died before its FIN_ACK).
    FinQueued {
        /// Final length of our stream.
        fin: u64,
    },
    /// The FIN is in flight on some path (that path's `fin_inflight` says which), waiting for
    /// the peer's FIN_ACK.
    FinSent {
        /// Final length of our stream.
        fin: u64,
    },
    /// The peer acknowledged our FIN: it has every byte we wrote.
    FinAcked {
        /// Final length of our stream.
        fin: u64,
    },
}

impl SendClose {
    /// The application closes its side at stream length `end` (again: no change).
    pub(super) fn close(&mut self, end: u64) {
        *self = match *self {
            // The FIN follows the last byte written.
            SendClose::Open => SendClose::FinQueued { fin: end },
            // Already closed: the first close fixed the length.
            closed => closed,
        };
    }

    /// The FIN to send now, if one is queued and `sent_all` (every byte below it went out and
    /// nothing waits to be re-sent); the state then moves to [`SendClose::FinSent`].
    pub(super) fn take_fin(&mut self, sent_all: impl Fn(u64) -> bool) -> Option<u64> {
        match *self {
            // Queued and nothing in front of it: out it goes.
            SendClose::FinQueued { fin } if sent_all(fin) => {
                *self = SendClose::FinSent { fin };
                Some(fin)
            }
            // Queued behind bytes still to (re)send: later.
            SendClose::FinQueued { .. } => None,
            // Not closed, already in flight, or acknowledged: nothing to send.
            SendClose::Open | SendClose::FinSent { .. } | SendClose::FinAcked { .. } => None,
        }
    }

    /// A path that carried our FIN died before the FIN_ACK: send it again.
    pub(super) fn fin_lost(&mut self) {
        *self = match *self {
            // In flight and lost: queue it again.
            SendClose::FinSent { fin } => SendClose::FinQueued { fin },
            // Already queued again (another path carried it too), or acknowledged meanwhile
            // (the loss no longer matters); `Open` cannot have a FIN in flight.
            other => other,
        };
    }

    /// The peer's FIN_ACK for `final_offset` arrived; false if that is not our FIN (a
    /// protocol violation).
    pub(super) fn fin_acked(&mut self, final_offset: u64) -> bool {
        match *self {
            // Our FIN, queued, in flight or acknowledged before (a repeat): done.
            SendClose::FinQueued { fin }
            | SendClose::FinSent { fin }
            | SendClose::FinAcked { fin }
                if fin == final_offset =>
            {
                *self = SendClose::FinAcked { fin };
                true
            }
            // Another length, or no FIN of ours at all.
            _ => false,
        }
    }

    /// True once the peer acknowledged our FIN.
    pub(super) fn is_acked(self) -> bool {
        matches!(self, SendClose::FinAcked { .. })
    }
}

/// How far the peer's direction of the stream has closed, from our side: whether our FIN_ACK
/// is owed and whether one went out. (Which path it goes on is the session's `fin_path`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RecvClose {
    /// Bytes of the peer's stream are still missing (its FIN may have arrived already).
    Receiving,
    /// The peer's whole stream arrived: a FIN_ACK must go out.
    FinAckOwed,
    /// Our FIN_ACK went out and nothing asks for another.
    FinAckSent,
    /// A FIN_ACK went out, and another is owed (the path that carried it died, or the peer
    /// sent stream frames again). Best effort: completion does not wait for it, because the
    /// peer usually had the first and has closed its connections because it was done.
    FinAckReowed,
}

impl RecvClose {
    /// The peer's whole stream has arrived (again, or still): a FIN_ACK is owed.
    pub(super) fn owe_fin_ack(&mut self) {
        *self = match *self {
            // Nothing answered yet: the first FIN_ACK is owed.
            RecvClose::Receiving | RecvClose::FinAckOwed => RecvClose::FinAckOwed,
            // Answered before: owed again, best effort.
            RecvClose::FinAckSent | RecvClose::FinAckReowed => RecvClose::FinAckReowed,
        };
    }

    /// True while a FIN_ACK is owed.
    pub(super) fn fin_ack_owed(self) -> bool {
        match self {
            // Something to send.
            RecvClose::FinAckOwed | RecvClose::FinAckReowed => true,
            // Nothing complete to answer, or answered.
            RecvClose::Receiving | RecvClose::FinAckSent => false,
        }
    }

    /// The owed FIN_ACK went out.
    pub(super) fn fin_ack_sent(&mut self) {
        *self = match *self {
            // Owed (first time or again): answered.
            RecvClose::FinAckOwed | RecvClose::FinAckReowed => RecvClose::FinAckSent,
            // Nothing was owed: nothing changes.
            other => other,
        };
    }

    /// True once a FIN_ACK has gone out at least once (what completion needs).
    pub(super) fn answered(self) -> bool {
        match self {
            // Sent at least once, whether or not another is owed.
            RecvClose::FinAckSent | RecvClose::FinAckReowed => true,
            // Never sent.
            RecvClose::Receiving | RecvClose::FinAckOwed => false,
        }
    }
}
