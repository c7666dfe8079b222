//! The msock relay (`msock proxy`): listeners behind NAT register a name over an outgoing
//! control channel; clients connect to `NAME@RELAY`; the relay splices each client flowpath
//! with a flowpath the listener dials back, and copies bytes between the two halves without
//! looking at them. Sessions keep every msock feature through it (multipath: each client
//! flowpath gets its own spliced pair; migration of either side: the moved side's flowpaths
//! are spliced anew; attach proofs stay end to end, so the relay cannot hijack a session).
//! The design follows section III-D of the msocket paper (its proxy splices two TCP halves
//! by a proxyPathID), plus authenticated names, limits and direct-first connections.
//!
//! # Protocol
//!
//! Every connection to the relay starts like an msock flowpath: the preamble `MSOCK\x01`,
//! then one frame in msock's framing (`length u32, type u8, body`), whose type says what the
//! connection is. Relay frames (types 0x20 and up; bodies at most `wire::MAX_RELAY_FRAME`;
//! names are 1 to 64 of `A-Z a-z 0-9 . _ -`, sent as `len u8, bytes`; an address is
//! `family u8 (4|6), ip [4|16], port u16`):
//!
//! | type | name | body | direction |
//! |------|------|------|-----------|
//! | 0x20 | REGISTER   | name, count u8, address × count (≤ 16), \[flags u8\] | listener → relay |
//! | 0x21 | NONCE      | nonce \[16\], \[cluster \[16\]\] | relay → listener |
//! | 0x22 | PROVE      | name_proof \[32\], key_proof \[32\] | listener → relay |
//! | 0x23 | REGISTERED | secret \[32\], ttl u32 (s), keepalive u32 (s) | relay → listener |
//! | 0x24 | DIAL       | splice_id u64, token \[16\] | relay → listener |
//! | 0x25 | SPLICE     | splice_id u64, token \[16\] | listener → relay (opens a connection) |
//! | 0x26 | ROUTE      | name | client → relay (opens a connection) |
//! | 0x27 | LOOKUP     | name | client → relay (opens a connection) |
//! | 0x28 | FOUND      | count u8, address × count | relay → client |
//! | 0x29 | GONE       | count u16, splice_id u64 × count (≤ 256) | listener → relay |
//! | 0x2A | PAIR       | nameplate (a name) | client → relay (opens a connection) |
//! | 0x2B | REGISTER_CODE | nameplate, count u8, address × count | listener → relay |
//! | 0x2C | PAIRED     | (empty) | listener → relay, on a nameplate's channel |
//! | 0x2D | FORWARD    | name, splice_id u64, token \[16\], address, time u64, mac \[32\] | relay → relay of a cluster (opens a connection) |
//! | 0x2E | DIAL_AT    | splice_id u64, token \[16\], address | relay → listener |
//! | 0x12/0x13 | PING/PONG | token u64 | control channel keepalive |
//! | 0x1F | ERROR      | code u16, reason (msock's ERROR) | relay → anyone |
//!
//! **Control channel** (listener → relay, kept open): REGISTER(name, direct addresses);
//! the relay answers its preamble and NONCE; the listener sends PROVE with
//! `name_proof = HMAC-SHA-256(secret, "msock relay name v1" || name || nonce)` (zeros when it
//! has no secret for the name) and `key_proof = HMAC-SHA-256(key, "msock relay key v1" ||
//! name || nonce)` (zeros without a key). The relay refuses with ERROR(authentication
//! failed) a wrong or missing key when it has `--auth-keys`, and a name held by another
//! listener whose proof does not verify with ERROR(0x20, name taken: a code of the relay's
//! own, so that the listener can tell it from a refused key). Registrations are limited per
//! source address (rate, names held); a refusal for a limit is ERROR(busy: retry). Otherwise it answers REGISTERED: a fresh secret
//! when the name was free (the listener keeps it in a file, see [`secrets`]), zeros when the
//! proof verified. A newer registration of a name replaces the older control channel. The
//! listener PINGs every `keepalive` seconds; the relay drops a channel silent for three
//! intervals, the listener one silent for two. The listener re-registers at once when the
//! channel breaks or its local address goes away, and then sends GONE with the splices that
//! left from an address it no longer has: the relay closes them, so that their clients
//! reconnect at once instead of after their dead time.
//!
//! **Client flowpath**: `MSOCK\x01 ROUTE(name)`, then the ordinary msock connection
//! (`MSOCK\x01 HELLO...`), sent without waiting. The relay reads the ROUTE frame and the
//! session's preamble (within the handshake timeout: a ROUTE that carries nothing never
//! reaches the listener), draws a random splice id and token, and sends DIAL on the name's
//! control channel (or, if the listener is re-registering, when it is back); it passes the
//! preamble on to the listener's half. The listener connects to the relay,
//! sends `MSOCK\x01 SPLICE(id, token)` and treats that connection as if it had accepted it;
//! the relay then copies bytes both ways. When the name is unknown, the listener does not
//! dial back within the handshake timeout, or a limit is hit, the client gets the preamble
//! and an ERROR (refused, or busy: retry), which msock clients report or retry like a
//! listener's refusal. Limits: flowpaths per source address, and flowpaths still starting
//! (no answer from the listener yet) per name and per source; a splice whose listener sends
//! nothing within the handshake timeout is closed.
//!
//! **Lookup**: `MSOCK\x01 LOOKUP(name)` → `MSOCK\x01 FOUND(addresses)` or ERROR, then close.
//! The relay publishes only the listener's direct addresses at the IP address it sees the
//! control channel come from: a listener behind NAT publishes nothing (its private address
//! could be some other machine's). A client tries the direct addresses first (1 s), then
//! the relay; it does the same lookup on every reconnect attempt.
//!
//! **Several relays** (no wire change): a listener may register one name at several relays,
//! with one control channel and one secret each (see [`agent`]); a client given several
//! relays (`NAME@A,B`, or a host with several addresses) looks the name up at all of them at
//! once and routes through one that found it, on every reconnect attempt, so a session
//! whose relay died resumes through another (see [`client`]).
//!
//! **Cluster id** (added with REGISTER's optional trailing `flags` byte and NONCE's optional
//! trailing `cluster` field): a listener that sets flag bit 0 (ask for the cluster) gets NONCE
//! with 16 more bytes: the relay's cluster id (`cluster::seal::cluster_id`: a one-way hash of
//! the cluster key and the key prefix under a label of its own; not secret), or zeros from a
//! standalone relay. A relay sends it only when asked, so a listener that predates it gets the
//! NONCE it knows; a relay that predates it refuses the flagged REGISTER with ERROR(protocol),
//! and the listener registers again without the flag (and does not ask that relay again).
//! Other flag bits are ignored; a NONCE whose trailing field is not exactly 16 bytes does not
//! decode. With `--relay-cluster` (the only time it asks), the listener keeps one secret per
//! name for all the relays of a cluster, and of several of its relays in one cluster
//! registers at one at a time (see [`agent`]); without, a cluster id is ignored.
//!
//! **Pairing by code** (added with frame types 0x2A-0x2C; a relay that predates them answers
//! them with ERROR(protocol), which the listener reports as "does not know codes"): a
//! listener waiting for a code registers its nameplate with REGISTER_CODE (then NONCE, PROVE
//! and REGISTERED as above); a sender opens `MSOCK\x01 PAIR(nameplate) MSOCK\x01` and the
//! pairing exchange, spliced like a ROUTE. The relay counts the PAIRs and burns the
//! nameplate after three or after PAIRED: see [`nameplate`]. The exchange itself (SPAKE2) is
//! end to end, specified in `proto::pake`.
//!
//! **Relay clusters** (added with frame types 0x2D-0x2E and the ERROR code 0x21, registry
//! unavailable; see [`cluster`]): relays started with `--etcd` share their names in etcd. A
//! ROUTE at relay A for a name attached at relay B: A opens `MSOCK\x01 FORWARD(name, id,
//! token, A's address, Unix time, MAC)` to B, where MAC = HMAC(a key derived from the cluster
//! key, B's relay id || the rest), each MAC accepted once within its 30 s window; B answers
//! FOUND() after sending DIAL_AT(id, token, A's address) on the name's control channel, or
//! ERROR; the
//! listener dials back to that address with SPLICE as after a DIAL, so that the data path has
//! one relay hop: only if that address is no nearer to it than the relay that sent DIAL_AT
//! (see `dial_at`: a relay on the internet cannot aim a listener at its loopback or LAN), and
//! with at most 64 dial-backs in flight per control channel (1024 started or waiting). Compatibility: a single relay (no `--etcd`) never sends either frame; a
//! listener that predates DIAL_AT takes it as an unexpected frame and re-registers, so a
//! cluster needs listeners that know it for names reached through another relay; a relay
//! that predates FORWARD answers it with ERROR(protocol). A listener that predates code
//! 0x21 treats it like any unknown code: a transient failure, retried.
//! When the relay holding the name cannot be reached (it died; its lease has not run out yet),
//! a ROUTE follows the name for up to 2 s before it answers busy: it is spliced here as soon
//! as the listener registers here, or forwarded to the relay it registered at.
//!
//! Anything else (not msock, an msock HELLO, an unknown frame) is answered with ERROR and
//! closed; a client that sends no first frame within the handshake timeout is dropped.
//!
//! `wire` gives each direction (client → relay, listener → relay, relay → client, relay →
//! listener) its own message type and decoder: a frame sent the wrong way does not decode.
//!
//! # State
//!
//! Names live in memory, and in a state file if one is given (`--state`): secrets survive a
//! restart of the relay, so listeners re-register their names and sessions resume. A name
//! whose listener has been gone for the name TTL is forgotten with its secret. With `--etcd`
//! the names (their secrets sealed with the cluster key) live in etcd, shared by the relays
//! of a cluster: see [`cluster`]; the in-memory registry then holds this relay's channels and
//! splices.

pub mod agent;
pub mod client;
pub mod cluster;
mod control;
mod dial_at;
pub mod etcd;
pub mod metrics;
pub mod nameplate;
pub mod pairing;
mod rate;
mod refusal;
pub mod registry;
mod route;
pub mod secrets;
pub mod server;
pub(crate) mod splice;
mod standby;
pub(crate) mod wire;
#[cfg(test)]
mod wire_fuzz_tests;

/// The relay's default port (`msock proxy`, and `NAME@HOST` without a port).
pub(crate) const DEFAULT_PORT: u16 = 7480;
