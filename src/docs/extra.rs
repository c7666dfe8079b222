//! What the man pages say beyond the clap definition: examples, files, environment and the
//! pages to see also. Kept next to the generator so that one place says where msock keeps
//! things; `tests/man_pages.rs` parses every example with the real CLI and checks the files
//! named here against what the binary creates.

/// One example: what it does, and the command line (a shell line; the `msock` parts of it
/// must parse).
pub struct Example {
    /// One sentence: what the command does.
    pub what: &'static str,
    /// The shell command.
    pub command: &'static str,
}

/// An [`Example`] literal (a macro, so that the tables below are promoted to statics).
macro_rules! ex {
    ($what:expr, $command:expr) => {
        Example {
            what: $what,
            command: $command,
        }
    };
}

/// The examples of the page of `sub` (`""` for `msock` itself).
pub fn examples(sub: &str) -> &'static [Example] {
    match sub {
        "" => &[
            ex!("Receive a stream on one machine...", "msock listen 9000 > received.tar"),
            ex!("...and send it from another; both ends exit when it is done.",
               "tar c photos/ | msock connect receiver.example:9000"),
            ex!("Send files and folders to a listener that accepts them.",
               "msock send-file photos/ report.pdf host:9000"),
            ex!("Measure plain TCP against msock on loopback (no listener needed).", "msock bench"),
        ],
        "listen" => &[
            ex!("Receive one stream into a file.", "msock listen 9000 > received.tar"),
            ex!("Serve many clients at once, like ncat -k; port 0 picks a free port and prints it.",
               "msock listen -k 127.0.0.1:0"),
            ex!("Accept files (and streams and benchmarks) into a folder.",
               "msock listen -k 9000 --save-dir ~/incoming"),
            ex!("A roaming shell for the clients whose keys are listed in a file.",
               "msock listen -k 2022 --sh-exec \"$SHELL -l\" --pty --authorized-keys ~/.msock-clients"),
            ex!("Forward each session to the local sshd, for clients holding the same secret file.",
               "msock listen -k 2222 --forward localhost:22 --psk-file secret"),
            ex!("Listen from behind NAT through a relay, under the name home.",
               "msock listen --relay relay.example --name home > received.tar"),
            ex!("Print this listener's key fingerprint, for clients' --peer-key.",
               "msock listen --show-key"),
        ],
        "connect" => &[
            ex!("Send a stream; the session survives address changes.",
               "tar c photos/ | msock connect receiver.example:9000"),
            ex!("Talk to an ordinary TCP server.", "msock connect --plain example.com:80"),
            ex!("Use every usable interface at once.", "msock connect --stripe host:9000"),
            ex!("Only wlan0, and wwan0 while wlan0 is gone.",
               "msock connect --iface wlan0 --backup wwan0 host:9000"),
            ex!("Forward local port 2022 to a listener started with --forward.",
               "msock connect --local 2022 --psk-file secret server.example:2222"),
            ex!("Carry ssh's own connection, as its ProxyCommand.",
               "ssh -o ProxyCommand='msock connect --psk-file secret %h:2222' me@server.example"),
            ex!("Reach a listener registered at a relay.", "msock connect home@relay.example"),
            ex!("Show the interfaces msock sees and their kinds.", "msock connect --list-ifaces"),
            ex!("Print this client's key fingerprint, for a listener's --authorized-keys.",
               "msock connect --show-key"),
        ],
        "send-file" => &[
            ex!("Send a folder and a file; run it again after an interruption to resume.",
               "msock send-file photos/ report.pdf host:9000"),
            ex!("Send stdin under a name.", "tar c logs/ | msock send-file - --name logs.tar host:9000"),
            ex!("Print a JSON summary on stdout at the end.", "msock send-file --json big.iso host:9000"),
            ex!("Send through a relay.", "msock send-file photos/ home@relay.example:7480"),
        ],
        "bench" => &[
            ex!("Plain TCP, one flowpath and striped msock on loopback, side by side.", "msock bench"),
            ex!("10 seconds to a listener, a line per second and a table per flowpath.",
               "msock bench host:9000"),
            ex!("The listener sends, for 30 seconds.", "msock bench -R -t 30s host:9000"),
            ex!("Both ways at once, over every interface.", "msock bench --bidir --stripe host:9000"),
            ex!("Then the same over one plain TCP connection (the listener needs -k).",
               "msock bench --compare-tcp host:9000"),
            ex!("One JSON document with iperf3's key names.", "msock bench --json host:9000"),
        ],
        "proxy" => &[
            ex!("Run a relay on port 7480 whose names survive a restart.",
               "msock proxy --state /var/lib/msock/relay.json --json > relay.log"),
            ex!("Require a registration key (listeners give theirs with --relay-key-file).",
               "msock proxy --auth-keys /etc/msock/relay-keys"),
        ],
        _ => &[],
    }
}

/// A file msock reads or writes: where, what, and which pages name it.
pub struct File {
    /// The path, with `CONFIG` or `STATE` for the directories of [`ENVIRONMENT`].
    pub path: &'static str,
    /// What it holds.
    pub what: &'static str,
    /// The subcommands whose pages list it.
    pub pages: &'static [&'static str],
}

/// The files, in the order the pages list them.
pub const FILES: &[File] = &[
    File {
        path: "CONFIG/listener.key",
        what: "The listener's private key (X25519, 64 hex digits, mode 0600), created on first \
               use; `msock listen --show-key` prints its fingerprint.",
        pages: &["", "listen"],
    },
    File {
        path: "CONFIG/client.key",
        what: "The client's private key, the same way, used by connect, send-file and bench; \
               `msock connect --show-key` prints its fingerprint.",
        pages: &["", "connect", "send-file", "bench"],
    },
    File {
        path: "CONFIG/known_peers",
        what: "The listener keys this client has met: one line per destination, DEST \
               FINGERPRINT (trust on first use, like ssh's known_hosts). Delete a line to \
               accept a listener's new key.",
        pages: &["", "connect", "send-file", "bench"],
    },
    File {
        path: "CONFIG/transfer.secret",
        what: "The sender's secret (64 hex digits, mode 0600) that its partial files at a \
               receiver belong to; without it an interrupted transfer cannot be resumed.",
        pages: &["", "send-file"],
    },
    File {
        path: "STATE/relay-names/RELAY/NAME.secret",
        what: "The secret of a name this listener registered at a relay (mode 0600); only its \
               holder can register the name again.",
        pages: &["", "listen"],
    },
];

/// The environment variables msock reads, and which pages list them.
pub const ENVIRONMENT: &[File] = &[
    File {
        path: "MSOCK_CONFIG_DIR",
        what: "The config directory (CONFIG above). Default: $XDG_CONFIG_HOME/msock, or \
               ~/.config/msock when XDG_CONFIG_HOME is unset or empty.",
        pages: &["", "listen", "connect", "send-file", "bench"],
    },
    File {
        path: "MSOCK_STATE_DIR",
        what: "The state directory (STATE above). Default: $XDG_STATE_HOME/msock, or \
               ~/.local/state/msock when XDG_STATE_HOME is unset or empty.",
        pages: &["", "listen"],
    },
    File {
        path: "XDG_CONFIG_HOME, XDG_STATE_HOME, HOME",
        what: "Where the directories above are when the MSOCK_ variables are not set.",
        pages: &["", "listen", "connect", "send-file", "bench"],
    },
    File {
        path: "MSOCK_LOG",
        what: "Diagnostics filter in tracing's syntax (e.g. msock=debug); overrides -v.",
        pages: &["", "listen", "connect", "send-file", "bench", "proxy"],
    },
    File {
        path: "MSOCK_PEER_ADDR, MSOCK_SESSION, MSOCK_PEER_KEY",
        what: "Set (not read) for the program of --exec and --sh-exec: the client's address \
               when the session opened, the session id and the client's key fingerprint.",
        pages: &["listen"],
    },
];

/// Other programs' pages worth seeing from the page of `sub`.
pub fn see_also_others(sub: &str) -> &'static [&'static str] {
    match sub {
        "" => &["nc(1)", "ncat(1)", "socat(1)", "iperf3(1)", "ssh(1)"],
        "listen" | "connect" => &["nc(1)", "ncat(1)", "socat(1)", "ssh(1)"],
        "send-file" => &["rsync(1)", "scp(1)"],
        "bench" => &["iperf3(1)"],
        _ => &[],
    }
}

/// What the page of `sub` adds to the exit status its help gives.
pub fn exit_status_more(sub: &str) -> Option<&'static str> {
    (sub == "connect").then_some(
        "With a listener that runs a program for the session (--exec, --sh-exec), msock \
         connect exits with the program's exit status (128 + the signal's number when a signal \
         killed it), as ssh does.",
    )
}
