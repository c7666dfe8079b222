//! The sans-IO core of msock: wire format, session state machine, buffers.
//!
//! Nothing in this module touches a socket, a runtime or a clock: bytes go in and come out as
//! values and the current time is passed in as a [`std::time::Duration`] since an arbitrary
//! epoch chosen by the caller. That makes every behaviour reproducible under a simulated network
//! (see `sim` in the tests).
//!
//! # Model
//!
//! A *session* carries one reliable byte stream in each direction. Each stream is addressed by
//! its own 64-bit byte offsets, starting at 0 (no wrap-around anywhere). Underneath, the session
//! owns zero or more *flowpaths*: TCP connections, each numbered by a 32-bit *path id* chosen by
//! the client (the end that opened the session). Any stream byte may travel on any flowpath, any
//! number of times; the receiver keeps the first copy and drops the rest. Because the offsets
//! belong to the session and not to TCP, a flowpath can die and be replaced without losing or
//! duplicating a byte.
//!
//! # Wire format, version 1
//!
//! All integers are unsigned big-endian. `[n]` is n raw bytes. Every msock format (these frames,
//! the control datagrams, the relay's frames, the file-transfer and bench messages) is read and
//! written with [`codec`].
//!
//! ## Preamble
//!
//! Each flowpath starts, in each direction, with the 6-byte preamble `4D 53 4F 43 4B 01`
//! (ASCII `MSOCK`, then the version byte 1). The client sends it immediately after the TCP
//! connection is established, followed directly by its first frame; the server sends its
//! preamble in front of its first reply. A server that receives something other than the magic
//! treats the connection as plain TCP (or refuses it); a client that receives anything else in
//! reply knows the server does not speak msock. A peer with the right magic but another version
//! is answered with ERROR(version) and closed.
//!
//! ## Frames
//!
//! After the preamble, each direction is a sequence of frames:
//!
//! ```text
//! length: u32   number of bytes that follow (type + body), 1 ..= 65545 (MAX_FRAME_LEN)
//! type:   u8
//! body:   \[length - 1\]
//! ```
//!
//! A length of 0 or above [`frame::MAX_FRAME_LEN`] is a protocol error, detected before any
//! allocation. A body shorter or longer than its type requires, or an unknown type, is a
//! protocol error too: the receiver sends ERROR(protocol) and closes the flowpath.
//!
//! | type | name | body | direction |
//! |------|------|------|-----------|
//! | 0x01 | HELLO(open)   | client_half u32, client_random \[32\], window u64, control_port u16, service u8, crypto u8, handshake_len u16, handshake | client → server |
//! | 0x02 | HELLO(attach) | session_id u64, path_id u32, client_nonce \[16\] | client → server |
//! | 0x03 | WELCOME       | session_id u64, server_random \[32\], window u64, control_port u16, handshake_len u16, handshake | server → client |
//! | 0x04 | CHALLENGE     | server_nonce \[16\], server_proof \[32\], cumulative u64 | server → client |
//! | 0x05 | ATTACH_PROOF  | client_proof \[32\], cumulative u64 | client → server |
//! | 0x06 | TICKET        | server_nonce \[16\] | server → client |
//! | 0x07 | HELLO(resume) | session_id u64, path_id u32, client_nonce \[16\], server_nonce \[16\], client_proof \[32\], cumulative u64 | client → server |
//! | 0x08 | RESUMED       | server_proof \[32\], cumulative u64 | server → client |
//! | 0x09 | HELLO(finish) | handshake_len u16, handshake | client → server |
//! | 0x10 | DATA          | offset u64, payload \[0 ..= 65536\] | both |
//! | 0x11 | ACK           | cumulative u64, limit u64, path_bytes u64 | both |
//! | 0x12 | PING          | token u64 | both |
//! | 0x13 | PONG          | token u64 (echoed) | both |
//! | 0x14 | FIN           | final_offset u64 | both |
//! | 0x15 | FIN_ACK       | final_offset u64 | both |
//! | 0x1F | ERROR         | code u16, reason \[UTF-8, 0 ..= 1024\] | both |
//!
//! ERROR codes: 1 protocol, 2 version, 3 unknown session, 4 authentication failed, 5 busy,
//! 6 flow control, 7 idle timeout, 8 aborted, 9 service refused, 10 key not authorized, 11
//! program sessions only (the listener runs a program for every session: a client that asked
//! for a byte stream opens a new session for service 3 instead). Unknown codes must be
//! reported, not rejected.
//!
//! ## Opening a session (first flowpath, path id 0)
//!
//! 1. client → `HELLO(open)`: a random 32-bit `client_half`, 32 random bytes, the receive
//!    window the client offers (bytes it will buffer for the server's stream), and the UDP port
//!    of its control socket (0: none), and the service it wants: 0 byte stream, 1 file
//!    transfer, 2 benchmark, 3 program (a program the listener runs for the session; the
//!    stream then carries that service's messages: the program's input and output, the
//!    terminal's window size, and its exit status). A listener that does not offer the service answers
//!    ERROR(service refused) with a reason saying what to change.
//! 2. server → `WELCOME`: `session_id = client_half << 32 | server_half` (the server draws
//!    `server_half` so that the id is unique among its sessions), 32 random bytes, its window,
//!    and its control port (the listening port, or 0).
//!
//! Both then derive the 256-bit session secret
//! `SHA-256("msock session secret v1" || session_id || client_random || server_random)`.
//! (Version 1 exchanges the random contributions in the clear; the encryption layer replaces
//! them with a key agreed by a Noise handshake.)
//!
//! ## Opening an encrypted session
//!
//! With `crypto` 3 (`Noise_XX_25519_AESGCM_SHA256`) or 4 (`Noise_XXpsk2_...`, a pre-shared
//! key; 1 and 2 were Noise NX, without client keys, and are refused), HELLO(open) carries the first Noise message (the client's ephemeral key), with the
//! rest of HELLO(open) as the prologue; WELCOME carries the second (the server's ephemeral and,
//! encrypted, its long-term key; its payload repeats WELCOME's other fields). The client checks
//! the server's key (pinning), then sends `HELLO(finish)` in clear: the third message, its own
//! long-term key, encrypted. The secret is derived from the completed handshake (see
//! [`handshake`]); every later byte on the flowpath, each way, is a sealed record
//! (`record`). The client's records follow HELLO(finish) at once, so opening costs the
//! client no round trip more than NX did; the server creates the session only once
//! HELLO(finish) verifies, so its own first bytes leave half a round trip after WELCOME. A
//! server whose policy does not admit the client's key answers a sealed ERROR(key not
//! authorized) and closes; a HELLO(finish) that does not verify is answered by closing.
//! Later flowpaths (attach, resume) prove the session secret as below: they carry no key.
//!
//! ## Attaching a further flowpath (new path id) or replacing one (same path id)
//!
//! 1. client → `HELLO(attach)`: session id, path id, fresh random `client_nonce`.
//! 2. server → `CHALLENGE`: fresh random `server_nonce`,
//!    `server_proof = HMAC-SHA-256(secret, "msock attach server v1" || session_id u64 ||
//!    path_id u32 || client_nonce || server_nonce || cumulative u64)`, and `cumulative`: the
//!    server has every client stream byte below it (bound by the proof, so that nobody on the
//!    way can make the client drop bytes it still has to re-send). An unknown session id is answered with ERROR(unknown session).
//! 3. client verifies `server_proof` (else it drops the connection: impostor), then sends
//!    `ATTACH_PROOF`: `client_proof` (same HMAC with label `"msock attach client v1"`, over its
//!    own `cumulative`) and that `cumulative`. The same holds for HELLO(resume) and RESUMED. It may send stream frames right behind it.
//! 4. server verifies `client_proof` in constant time; on failure ERROR(authentication failed)
//!    and close. On success the path is active; if the path id was in use, the older connection
//!    is dropped and whatever it had in flight is queued for re-sending.
//!
//! ## Attaching in one flight with a ticket
//!
//! On every attached flowpath (two at session open, one after each attach) the server sends
//! `TICKET(server_nonce)`: a single-use nonce, `HMAC-SHA-256(secret, "msock ticket v1" ||
//! index u64)` truncated to 16 bytes, of which it keeps at most 8 outstanding. A client holding
//! a ticket replaces or adds a flowpath with one `HELLO(resume)`: session id, path id, a fresh
//! `client_nonce`, the ticket as `server_nonce`, `client_proof` over both nonces (as for
//! ATTACH_PROOF) and its `cumulative`; it may send stream frames right behind it, but only new
//! data: bytes that were in flight on a dead connection wait until the server has said what it
//! holds, so that a fresh connection's first flights are not spent on duplicates. The server
//! checks that the ticket is outstanding (then forgets it: a replay is refused), verifies the
//! proof, and answers `RESUMED` (server proof over both nonces, its `cumulative`) before any
//! other frame. An unknown ticket or a bad proof gets ERROR(authentication failed) and a close;
//! the client then attaches with HELLO(attach). This saves the CHALLENGE round trip.
//!
//! Each side treats the other's `cumulative` as an acknowledgement and re-sends exactly the bytes
//! at and above it that were in flight on a dead connection. A session id alone is worthless:
//! the server's nonce is fresh for every attempt, so neither a guessed id nor a recorded proof
//! attaches anything.
//!
//! ## Data, acknowledgements and flow control
//!
//! `DATA(offset, payload)` carries stream bytes `[offset, offset + len)`. The receiver stores
//! them in its reorder buffer and drops duplicate bytes. `ACK` reports, on the flowpath it is
//! sent on: `cumulative` (every byte below it was received), `limit` (the sender may send bytes
//! below this offset: read offset + receive window, never decreasing), and `path_bytes` (stream
//! bytes received on this connection since it attached, for per-path delivery rates). Bytes at
//! or above `limit` are a flow-control error. A receiver acknowledges after
//! [`session::Config::ack_every`] bytes on a path or [`session::Config::ack_delay`] after data,
//! and sends a window update when a quarter of its window has opened.
//!
//! The sender keeps every unacknowledged byte in its send buffer (bounded; the application
//! blocks when it is full) and remembers which flowpath carried which range, so that the ranges
//! of a dead flowpath can be re-sent on another. Each flowpath takes new bytes as its socket
//! drains, so faster paths carry more. When a flowpath has nothing new it may send (the peer's
//! window is full, or everything was sent), it re-sends the lowest bytes still in flight on a
//! slower flowpath (by smoothed RTT), each range at most once more: a chunk stuck behind a slow
//! path would otherwise hold back in-order delivery and the window.
//!
//! ## Keepalive
//!
//! `PING(token)` is answered by `PONG(token)`; the round trip is an RTT sample. A PING is sent
//! when a flowpath attaches and whenever nothing has arrived on it for the keepalive interval
//! ([`session::Config::keepalive`], 3 s by default). A flowpath that has owed an answer (an ACK
//! for data, a PONG, a FIN_ACK) for the dead time ([`session::Config::dead_time`], 5 s) is
//! declared dead: its bytes go to the other flowpaths and the client replaces it. The idle
//! timeout, when set, counts stream data only, not keepalives.
//!
//! ## Mobility
//!
//! The client replaces a flowpath whose connection broke, went silent, or whose local address
//! disappeared, by attaching a new connection with the same path id (from whatever address
//! the routing picks now, to the server's address re-resolved by name on every attempt).
//! An attempt races connects to the addresses the server was known at against lookups of
//! its name, repeated every retry interval while connects hang, and gives a known address
//! only a few smoothed RTTs ([`redial`]), so a server that moved while the client was away
//! is found within a retry interval of its name's update.
//! When the server's own address changes, each session sends an authenticated RECONNECT
//! datagram from the server's control socket to the client's (the peer address of its last
//! flowpath, the control port from HELLO); the client acknowledges it and attaches its
//! flowpaths to the announced address. The datagram format is in [`control`].
//!
//! ## Closing
//!
//! `FIN(final_offset)` says the sender's stream is `final_offset` bytes long. It follows the last
//! DATA and is re-sent, like data, if the flowpath that carried it dies before `FIN_ACK`.
//! The receiver answers `FIN_ACK(final_offset)` once it holds every byte below it. Each
//! direction closes on its own (half-close); the session is finished when our FIN was
//! acknowledged, the peer's FIN has been acknowledged and all of its bytes were read.
//!
//! ## A peer that exited
//!
//! The TCP connections themselves say one more thing. An end closes a flowpath's connection
//! in order (TCP FIN) only once its session is over (finished, failed with an ERROR sent
//! first, or interrupted); a connection it abandons while the session goes on (replaced,
//! declared dead, left behind by an address change, retired by the interface policy, or an
//! attach it drops) is reset (RST, `SO_LINGER` 0). A killed process's kernel closes its
//! sockets in order. So when the last active flowpath of a session ends in an orderly close
//! while the session still has something to exchange, the peer's process exited: the session
//! ends at once ("peer exited without closing"), at either end, instead of waiting for the
//! peer to come back. A reset or silence still means the peer may be moving and is waited
//! for, as is an orderly close of one of several active flowpaths. The rule applies to
//! direct flowpaths only: a relay closes spliced connections in order on its own account
//! (idle timeout, shutdown, restart), so through a relay an orderly close counts as a reset.
//! (A killed process that still had unread bytes in a socket's receive queue makes its
//! kernel reset that connection instead; that peer is waited for as one that moved.)

pub(crate) mod auth;
pub mod code;
pub mod codec;
pub mod control;
pub mod deframer;
pub mod frame;
pub mod handshake;
pub(crate) mod out_queue;
pub mod pake;
pub(crate) mod path;
pub(crate) mod range_set;
pub(crate) mod record;
pub mod redial;
pub mod session;
pub mod text;

#[cfg(test)]
pub(crate) mod fuzz_tests;
#[cfg(test)]
mod sim;

pub use control::{ControlAction, ControlError};
pub use deframer::{DeframeError, Deframer, PreambleMatch, PREAMBLE};
pub use frame::{ErrorCode, Frame, Service};
pub use out_queue::OutQueue;
pub use path::{PathId, PathStats};
pub use session::{
    AttachError, ClientHandshake, Config, Event, FrameError, PendingAttach, Role, ServerHandshake,
    Session, SessionError,
};
