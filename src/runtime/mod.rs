//! The tokio runtime glue: sockets, timers and the application's byte streams around a
//! sans-IO [`Session`](crate::proto::Session). It names no layer above it: services register
//! in a dispatch table ([`services::Services`], which the command that owns the listener
//! routes each accepted client through) and with the classifier ([`listener::Magic`]), and a
//! client's other routes come in as a dial strategy ([`reconnect::DialStrategy`]).
//!
//! Which file does what:
//! - [`server`]: a listener's sockets, routing tables (attach, resume, control) and session
//!   acceptance; [`listener`]: its accept loop and the classification of each connection;
//!   [`services`]: the service-dispatch table and the loop serving clients concurrently.
//! - [`client`]: client session setup (routes, interface policy, handshake, key pinning);
//!   [`reconnect`]: replacing a client's broken flowpaths; [`policy`]: which interfaces
//!   flowpaths use; [`ifaces`]: the machine's interfaces and their kinds.
//! - `driver`: the one task per session that moves bytes between sockets, timers and the
//!   application.
//! - [`conn`]: one flowpath's TCP connection; `control`: the UDP control channel (server
//!   moves); [`netwatch`]: address and link change notifications.
//! - [`app`]: the application-side traits; `stdio`: stdin/stdout; [`shared_stdio`]: stdin and
//!   stdout shared by a listener's concurrent sessions (as `ncat -k`); [`channel_io`]: channels
//!   for services written as async code; [`plain`]: plain TCP (no msock) copying.
//! - [`keys`]: keys on disk (listener and client identities, pinned peers, pre-shared keys);
//!   [`authorized`]: the client keys a listener admits (`--authorized-keys`);
//!   [`events`]: `--json-events` output; [`sys`]: process resource limits and memory use.

pub mod app;
pub mod authorized;
pub mod channel_io;
pub mod client;
pub mod conn;
pub(crate) mod control;
pub(crate) mod driver;
pub mod events;
pub mod ifaces;
pub mod keys;
pub mod listener;
pub mod netwatch;
pub mod plain;
pub mod policy;
pub mod reconnect;
pub mod server;
pub mod services;
pub mod shared_stdio;
pub(crate) mod stdio;
pub mod sys;
pub mod tcpinfo;

pub use app::{AppSink, AppSource};
pub use client::{resolve, ConnectError, Family};
pub use conn::FlowConn;
pub use driver::{AttachRequest, DriveError, Driver, Outcome, PathReport, Snapshot, Totals};
pub use listener::{DetectPolicy, Incoming, Routes};
pub use shared_stdio::SharedStdio;
pub use stdio::{StdinSource, StdoutSink};
