//! msock: netcat and iperf3 for networks that move.
//!
//! [`proto`] is the sans-IO protocol core; [`runtime`] drives it with tokio; [`cli`] and
//! [`cmd`] implement the `msock` command; [`transfer`] is the file-transfer layer of
//! `send-file`; [`bench`](mod@bench) is the throughput test of `msock bench`; [`relay`] is
//! `msock proxy` and its listener and client sides.

pub mod bench;
pub mod cli;
pub mod cmd;
pub mod docs;
pub mod proto;
pub mod relay;
pub mod runtime;
pub mod transfer;
