//! msock: netcat and iperf3 for networks that move.
//!
//! A *session* is a reliable byte stream with its own 64-bit offsets, carried by zero or more
//! *flowpaths* (ordinary TCP connections) that can break, be replaced, run side by side over
//! several interfaces, or pass through a relay. The crate is layered; dependencies point
//! down only (`tests/proto_sans_io.rs` fails on an upward or sideways `crate::` import):
//!
//! ```text
//!   main.rs                   parse arguments, run the subcommand, exit code
//!      |
//!   cmd  (cli, docs)          arguments -> configurations; printing, progress, tables, JSON
//!      |
//!   transfer bench relay      services: each a protocol of its own over a session
//!   forward program           (the relay: over spliced flowpaths; forward: over TCP)
//!      |
//!   pairing                   pairing by code: over the relay, before a session
//!      |
//!   runtime                   tokio glue: server, client, one driver per session,
//!      |                      interfaces, control socket, events, process helpers
//!   proto                     sans-IO core: codec, frames, Session, buffers, handshake, records
//! ```
//!
//! A lower layer that needs something from above takes it as a parameter: the runtime's
//! client takes its dial strategy (direct, or through a relay), its dispatch table takes the
//! services (file transfer, bench) as handlers, its classifier their magic bytes; events go
//! to an [`runtime::events::Events`] sink passed in.
//!
//! | module | owns |
//! |--------|------|
//! | [`proto`] | the wire format (spec in its doc), the session state machine, send and reorder buffers, the Noise handshake and AES-GCM records, the simulator tests; no sockets, no clock |
//! | [`runtime`] | sockets, timers and the application's byte streams around a session: accepting and routing flowpaths, opening and reconnecting them, interface policy, address watching |
//! | [`transfer`] | `send-file` / `listen --save-dir`: its messages, name checks, sender and receiver |
//! | [`bench`](mod@bench) | the throughput test of `msock bench`: its protocol, meters, both ends, the TCP baseline |
//! | [`forward`] | port forwarding: `listen --forward` joins sessions to TCP connections, `connect --local` carries local ones |
//! | [`program`] | `listen --exec/--sh-exec [--pty]`: a program per session, its messages (input, output, window size, exit status), pseudo-terminals, the client's raw terminal |
//! | [`relay`] | `msock proxy` (registry, splicing, typed wire per direction) and its listener and client sides |
//! | [`pairing`] | `--code`: the SPAKE2 pairing exchange over a relay's nameplate, and the sender's tickets for resuming |
//! | [`cli`] | the clap definition of every flag (arguments only) |
//! | [`cmd`] | one module per subcommand: arguments to configurations, output, exit codes |
//! | [`docs`] | man pages and shell completions generated from [`cli`] |

pub mod bench;
pub mod cli;
pub mod cmd;
pub mod docs;
pub mod forward;
pub mod pairing;
pub mod program;
pub mod proto;
pub mod relay;
pub mod runtime;
pub mod transfer;
