//! The tokio runtime glue: sockets, timers and the application's byte streams around a
//! sans-IO [`Session`](crate::proto::Session).

pub mod app;
pub mod channel_io;
pub mod client;
pub mod conn;
pub mod control;
pub mod driver;
pub mod events;
pub mod ifaces;
pub mod keys;
pub mod listener;
pub mod netwatch;
pub mod plain;
pub mod policy;
pub mod reconnect;
pub mod server;
pub mod stdio;
pub mod sys;

pub use app::{AppSink, AppSource};
pub use stdio::{StdinSource, StdoutSink};
pub use client::{open_session, resolve, ConnectError, Family};
pub use conn::FlowConn;
pub use driver::{AttachRequest, DriveError, Driver, Outcome, PathReport, Snapshot, Totals};
pub use listener::{accept_loop, inject, DetectPolicy, Incoming, Routes};
pub use reconnect::ReconnectPolicy;
