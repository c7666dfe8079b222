# Values clap does not know, looked up when TAB is pressed (added by src/docs/completions.rs).
function _msock_ifaces
    if test -d /sys/class/net
        for d in /sys/class/net/*
            string replace -r '.*/' '' -- $d
        end
    else if command -q ip
        ip -o link show 2>/dev/null | string replace -rf '^\d+: ([^:@ ]+).*' '$1'
    end
end
function _msock_iface_kinds
    set -l tok (commandline -ct | string replace -r '^--iface-kind=' '')
    if string match -q '*=*' -- $tok
        set -l name (string split -m1 = -- $tok)[1]
        for k in wifi cellular ethernet tunnel other
            echo $name=$k
        end
    else
        for i in (_msock_ifaces)
            echo $i=
        end
    end
end
function _msock_congestion
    set -l f /proc/sys/net/ipv4/tcp_available_congestion_control
    test -r $f; and string split ' ' -- (string trim < $f)
end

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_msock_global_optspecs
    string join \n v/verbose h/help V/version
end

function __fish_msock_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_msock_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_msock_using_subcommand
    set -l cmd (__fish_msock_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c msock -n "__fish_msock_needs_command" -s v -l verbose -d 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
complete -c msock -n "__fish_msock_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c msock -n "__fish_msock_needs_command" -s V -l version -d 'Print version'
complete -c msock -n "__fish_msock_needs_command" -f -a "listen" -d 'Wait for a connection and copy it to stdout, stdin to it (like `nc -l`)'
complete -c msock -n "__fish_msock_needs_command" -f -a "connect" -d 'Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`)'
complete -c msock -n "__fish_msock_needs_command" -f -a "send-file" -d 'Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with progress'
complete -c msock -n "__fish_msock_needs_command" -f -a "bench" -d 'Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run the built-in loopback benchmark'
complete -c msock -n "__fish_msock_needs_command" -f -a "proxy" -d 'Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST --name NAME`) and clients reach them as NAME@HOST'
complete -c msock -n "__fish_msock_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c msock -n "__fish_msock_using_subcommand listen" -l relay -d 'Also listen through the relay at HOST[:PORT] (default port 7480), under --name: works behind NAT, since the listener connects out. Re-registers after address changes. Repeat it (or separate relays by commas, up to 8) to register the same name at several relays, each with its own secret and control channel: the listener serves through any of them, and clients that list them (NAME@A,B) fail over when one dies. For relays of one cluster give --relay-cluster. stderr says which relays the name is registered at after each change. --code takes one relay' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l name -d 'The name to register at the relay; clients connect to NAME@HOST[:PORT]. The first registration returns a secret, kept in $MSOCK_STATE_DIR, $XDG_STATE_HOME/msock or ~/.local/state/msock (relay-names/RELAY/NAME.secret); only its holder can register the name again' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l relay-key-file -d 'A file whose first line is the registration key, for a relay started with --auth-keys (the relay of --relay, or with --code the one from config.toml)' -r -F
complete -c msock -n "__fish_msock_using_subcommand listen" -l authorized-keys -d 'Admit only clients whose key is listed in FILE: one fingerprint per line (SHA256:..., as `msock connect --show-key` prints it; words after it are a comment), lines starting with # and blank lines ignored. Applies to every service (byte streams, files, benchmarks). The file is re-read when it changes (checked as each session opens), so no restart is needed. A refused client is told the fingerprint to add. Needs encryption' -r -F
complete -c msock -n "__fish_msock_using_subcommand listen" -l max-sessions -d 'Most sessions served at once with -k (of every kind: streams, files, benchmarks); the client beyond is told the listener is busy. Connections still in their handshake are capped too, at the same number (at least 64)' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l detect-wait -d 'How long a new client may stay silent before it is taken for plain TCP (served with --allow-plain, else told so and closed; then at least 2s, so that a slow msock client is not refused)' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l save-dir -d 'Accept files from `msock send-file` into DIR (created if missing). Without it, file offers are refused. Files are verified (BLAKE3) before they get their final name, and an interrupted transfer resumes when the sender runs again' -r -F
complete -c msock -n "__fish_msock_using_subcommand listen" -l max-size -d 'Refuse file offers larger than SIZE in total (e.g. 500M, 4G). Offers larger than the free space in --save-dir are always refused' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l forward -d 'Port forwarding: join each session to a new TCP connection to HOST:PORT (like `socat TCP-LISTEN,fork TCP:HOST:PORT`) instead of stdin and stdout; with -k, sessions are served at the same time. Clients use `msock connect --local PORT` or ssh\'s ProxyCommand. Needs --authorized-keys or --psk-file, or --allow-anyone' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -s e -l exec -d 'Run a program for each session, its stdin and stdout wired to the session (as ncat -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no shell). `msock connect` exits with the program\'s exit status. It keeps running while its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds MSOCK_PEER_ADDR (the client\'s address at the start), MSOCK_SESSION (the session id) and MSOCK_PEER_KEY (the client\'s key fingerprint, when the client has a key). Needs --authorized-keys or --psk-file, or --allow-anyone' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -s c -l sh-exec -d 'Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c)' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l idle-timeout -d 'End a session that has sent and received no data for this long (e.g. 30s, 2m)' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l resume-timeout -d 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l keepalive -d 'Probe a flowpath with a PING when nothing arrived on it for this long' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l dead-time -d 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long' -r
complete -c msock -n "__fish_msock_using_subcommand listen" -l congestion -d 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system\'s' -r -f -a '(_msock_congestion)'
complete -c msock -n "__fish_msock_using_subcommand listen" -l psk-file -d 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener\'s key and this one' -r -F
complete -c msock -n "__fish_msock_using_subcommand listen" -l show-key -d 'Print this listener\'s key fingerprint (to give to clients for --peer-key) and exit. The key is created on first use, in the config directory (see ENCRYPTION below)'
complete -c msock -n "__fish_msock_using_subcommand listen" -l relay-cluster -d 'The --relay relays are of one cluster (msock proxy --etcd): the name is registered at one of them at a time with the cluster\'s one secret (relay-clusters/ in the state directory), and the others stand by and take it over at once when its channel is lost. Only for relays you know to be of that cluster: the cluster\'s identity is public, so a relay that merely claims it could pass the listener\'s proof on to the real cluster. Without it, each relay gets its own registration and secret, and relays of one cluster refuse all but the first ("name taken")'
complete -c msock -n "__fish_msock_using_subcommand listen" -l code -d 'Wait for a sender by code: register a fresh code\'s number at the relay (--relay, else `relay = "HOST:PORT"` in config.toml in the config directory), print `code: 7-tulip-orbit-canyon` on stderr and wait for `msock send-file --code CODE FILES` or `msock connect --code CODE`. The words (3 of 7776: 38.8 bits) never leave the two machines: a password-authenticated key exchange (SPAKE2) turns the code into the session\'s pre-shared key, and a wrong code fails on both sides before any byte of a file is sent. The code is burned after it paired once or after three tries (an attacker\'s chance per try is 1 in 7776^3, 2.1e-12); the listener ends after its first session that ended well. A killed sender runs its command again and resumes without pairing again; a killed listener resumes with --resume. With a relay started with --auth-keys, give --relay-key-file'
complete -c msock -n "__fish_msock_using_subcommand listen" -l resume -d 'With --code: instead of a new code, serve again the pairing of the last `listen --code` killed before its transfer ended (same --relay and --save-dir; its ticket is kept in the state directory, pairing/RELAY/listener-NAME.ticket). Then the sender runs its command again: both resume from the partial files, and nobody types a code'
complete -c msock -n "__fish_msock_using_subcommand listen" -l allow-anyone -d 'Let --exec, --sh-exec and --forward run without --authorized-keys or --psk-file: anyone who reaches this listener gets the program or the target. Plain TCP clients (which prove no key) reach them only with this and --allow-plain'
complete -c msock -n "__fish_msock_using_subcommand listen" -s k -l keep-open -d 'Keep listening: serve clients at the same time (up to --max-sessions) and go on after each (see "Several clients" below for stdin and stdout)'
complete -c msock -n "__fish_msock_using_subcommand listen" -l allow-plain -d 'Also serve clients that do not speak msock (nc, telnet) as plain TCP: NOT encrypted, NOT authenticated, no mobility; stderr says so for each. Without it they get one line saying so and are closed. Not with --authorized-keys or --psk-file: a plain client cannot prove a key'
complete -c msock -n "__fish_msock_using_subcommand listen" -l overwrite -d 'Replace existing files that differ from the ones offered (default: refuse the file and tell the sender)'
complete -c msock -n "__fish_msock_using_subcommand listen" -l yes -d 'Accept file offers without asking. Without it, a --save-dir listener whose stdin and stderr are a terminal asks before accepting an offer from a sender key it has not seen ("accept 3 files, 1.2 GB, from SHA256:... at ADDR? [y/N]"; its stdin then answers and is not sent to byte-stream sessions); a key is seen when it is in --authorized-keys or in `accepted_senders` in the config directory, where each accepted key is added. A refused sender is told that the receiver declined. Other listeners accept and log each offer on stderr'
complete -c msock -n "__fish_msock_using_subcommand listen" -l pty -d 'With --exec/--sh-exec: run the program under a pseudo-terminal (a remote shell: `msock listen -k 2022 --sh-exec "$SHELL -l" --pty`). `msock connect` then puts its terminal in raw mode and sends its window size'
complete -c msock -n "__fish_msock_using_subcommand listen" -l stderr -d 'With --exec/--sh-exec: send the program\'s stderr to the client too (default: to this listener\'s stderr). Under --pty it always goes to the terminal'
complete -c msock -n "__fish_msock_using_subcommand listen" -l recv-only -d 'Only receive: do not read stdin, close our sending side at once'
complete -c msock -n "__fish_msock_using_subcommand listen" -l send-only -d 'Only send: discard whatever the peer sends instead of writing it to stdout'
complete -c msock -n "__fish_msock_using_subcommand listen" -s 4 -d 'Use IPv4 addresses only'
complete -c msock -n "__fish_msock_using_subcommand listen" -s 6 -d 'Use IPv6 addresses only'
complete -c msock -n "__fish_msock_using_subcommand listen" -l json-events -d 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
complete -c msock -n "__fish_msock_using_subcommand listen" -l no-encrypt -d 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session\'s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
complete -c msock -n "__fish_msock_using_subcommand listen" -s v -l verbose -d 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
complete -c msock -n "__fish_msock_using_subcommand listen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c msock -n "__fish_msock_using_subcommand listen" -s V -l version -d 'Print version'
complete -c msock -n "__fish_msock_using_subcommand connect" -l forget-key -d 'Remove the listener key pinned for DEST from known_peers and exit, printing each line removed (like `ssh-keygen -R`; exit 0 also when nothing was pinned). DEST HOST removes every line naming HOST; HOST:PORT the lines a connection there would use' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l code -d 'Connect to the `msock listen --code` that printed CODE (e.g. 7-tulip-orbit-canyon), through its relay; see `msock listen --code`' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l local -d 'Forward a local TCP port to the listener (like `ssh -L`): accept connections on [ADDR:]PORT (ADDR 127.0.0.1 unless given) and carry each over a session of its own, which keeps the program\'s connection alive across moves. The listener runs with --forward HOST:PORT. Runs until interrupted' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -s w -l wait -d 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -s s -l source -d 'Local address to connect from (instead of choosing interfaces by a policy)' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l retry-interval -d 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l peer-key -d 'The listener\'s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this host is pinned and later required (trust on first use, like ssh; see ENCRYPTION in `msock --help`)' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l iface -d 'Only use this interface; repeat for several, in order of preference. A NAME this machine does not have is warned about and used if it appears; with none of the names here (--iface and --backup), connecting is refused, listing the interfaces there are' -r -f -a '(_msock_ifaces)'
complete -c msock -n "__fish_msock_using_subcommand connect" -l backup -d 'Use this interface only while no other is usable; repeatable' -r -f -a '(_msock_ifaces)'
complete -c msock -n "__fish_msock_using_subcommand connect" -l iface-kind -d 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces. A NAME this machine does not have is warned about (as with --iface) and applies if it appears' -r -f -a '(_msock_iface_kinds)'
complete -c msock -n "__fish_msock_using_subcommand connect" -l idle-timeout -d 'End a session that has sent and received no data for this long (e.g. 30s, 2m)' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l resume-timeout -d 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l keepalive -d 'Probe a flowpath with a PING when nothing arrived on it for this long' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l dead-time -d 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long' -r
complete -c msock -n "__fish_msock_using_subcommand connect" -l congestion -d 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system\'s' -r -f -a '(_msock_congestion)'
complete -c msock -n "__fish_msock_using_subcommand connect" -l psk-file -d 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener\'s key and this one' -r -F
complete -c msock -n "__fish_msock_using_subcommand connect" -l show-key -d 'Print this client\'s key fingerprint (for a listener\'s --authorized-keys) and exit. The key is created on first use, in the config directory (see ENCRYPTION below); send-file and bench use the same key'
complete -c msock -n "__fish_msock_using_subcommand connect" -l plain -d 'Talk plain TCP (no msock session) to a server that does not speak msock: one TCP connection, so no interface policies and no reconnecting'
complete -c msock -n "__fish_msock_using_subcommand connect" -l list-ifaces -d 'Print the network interfaces msock sees, what kind each is (wifi, cellular, ethernet, loopback, tunnel, other) and how that was decided (sysfs, name, user, flags), then exit without connecting'
complete -c msock -n "__fish_msock_using_subcommand connect" -l recv-only -d 'Only receive: do not read stdin, close our sending side at once'
complete -c msock -n "__fish_msock_using_subcommand connect" -l send-only -d 'Only send: discard whatever the peer sends instead of writing it to stdout'
complete -c msock -n "__fish_msock_using_subcommand connect" -l stripe -d 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)'
complete -c msock -n "__fish_msock_using_subcommand connect" -l prefer-wifi -d 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)'
complete -c msock -n "__fish_msock_using_subcommand connect" -l prefer-cellular -d 'Like --prefer-wifi, for cellular'
complete -c msock -n "__fish_msock_using_subcommand connect" -s 4 -d 'Use IPv4 addresses only'
complete -c msock -n "__fish_msock_using_subcommand connect" -s 6 -d 'Use IPv6 addresses only'
complete -c msock -n "__fish_msock_using_subcommand connect" -l json-events -d 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
complete -c msock -n "__fish_msock_using_subcommand connect" -l no-encrypt -d 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session\'s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
complete -c msock -n "__fish_msock_using_subcommand connect" -s v -l verbose -d 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
complete -c msock -n "__fish_msock_using_subcommand connect" -s h -l help -d 'Print help'
complete -c msock -n "__fish_msock_using_subcommand connect" -s V -l version -d 'Print version'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l code -d 'Send to the `msock listen --code` that printed CODE (e.g. 7-tulip-orbit-canyon), through its relay; see `msock listen --code`. Run the same command again after an interruption: it resumes without pairing again (the session\'s key is kept in the state directory, pairing/RELAY/NUMBER.ticket, until the transfer ended well). If the listener was killed, it first runs `msock listen --code --resume`' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l text -d 'With --code: send TEXT (without TEXT: stdin, at most 1 MiB) instead of files; the listener prints it on its stdout' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l name -d 'The file name the receiver gives stdin\'s bytes (with PATH `-`)' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -s w -l wait -d 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -s s -l source -d 'Local address to connect from (instead of choosing interfaces by a policy)' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l retry-interval -d 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l peer-key -d 'The listener\'s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this host is pinned and later required (trust on first use, like ssh; see ENCRYPTION in `msock --help`)' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l iface -d 'Only use this interface; repeat for several, in order of preference. A NAME this machine does not have is warned about and used if it appears; with none of the names here (--iface and --backup), connecting is refused, listing the interfaces there are' -r -f -a '(_msock_ifaces)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l backup -d 'Use this interface only while no other is usable; repeatable' -r -f -a '(_msock_ifaces)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l iface-kind -d 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces. A NAME this machine does not have is warned about (as with --iface) and applies if it appears' -r -f -a '(_msock_iface_kinds)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l idle-timeout -d 'End a session that has sent and received no data for this long (e.g. 30s, 2m)' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l resume-timeout -d 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l keepalive -d 'Probe a flowpath with a PING when nothing arrived on it for this long' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l dead-time -d 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long' -r
complete -c msock -n "__fish_msock_using_subcommand send-file" -l congestion -d 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system\'s' -r -f -a '(_msock_congestion)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l psk-file -d 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener\'s key and this one' -r -F
complete -c msock -n "__fish_msock_using_subcommand send-file" -s q -l quiet -d 'Print nothing on stderr but errors (no progress bar, no summary)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l json -d 'At the end, print one JSON object on stdout: files, bytes, seconds, rate, resumed bytes, bytes per flowpath and each file\'s hash'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l stripe -d 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l prefer-wifi -d 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l prefer-cellular -d 'Like --prefer-wifi, for cellular'
complete -c msock -n "__fish_msock_using_subcommand send-file" -s 4 -d 'Use IPv4 addresses only'
complete -c msock -n "__fish_msock_using_subcommand send-file" -s 6 -d 'Use IPv6 addresses only'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l json-events -d 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
complete -c msock -n "__fish_msock_using_subcommand send-file" -l no-encrypt -d 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session\'s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
complete -c msock -n "__fish_msock_using_subcommand send-file" -s v -l verbose -d 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
complete -c msock -n "__fish_msock_using_subcommand send-file" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c msock -n "__fish_msock_using_subcommand send-file" -s V -l version -d 'Print version'
complete -c msock -n "__fish_msock_using_subcommand bench" -s t -l time -d 'How long to measure (e.g. 10s, 1m), after --omit. The built-in run (no HOST:PORT) gives each of its three tests a third of it' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s n -l bytes -d 'Send this many bytes of payload instead of sending for --time (e.g. 1G); each direction with --bidir, each test in the built-in run' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s i -l interval -d 'Print the receiver\'s figures every DURATION (0: only the totals; from 10ms to a day)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s l -l len -d 'Size of each block the sender hands over (e.g. 128K; at most 16M). Blocks go to the session or socket in pieces of at most 256 KiB' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s O -l omit -d 'Send for DURATION more before --time and leave it out of the totals (TCP slow start), as iperf3 -O: `-O 1 -t 3` sends for 4 s and measures the last 3; its intervals are marked omitted. With --time only' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s P -l parallel -d 'Run N tests at once, each over a session (or TCP connection) of its own, as iperf3\'s parallel streams: a row per stream and a SUM row (at most 128)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s b -l bitrate -d 'Pace each stream\'s sender to RATE bits per second (e.g. 100M, 1G; K, M, G, T are powers of 1000, as iperf3 -b). Default: as fast as it goes' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s w -l window -d 'Socket send and receive buffer size of this end\'s TCP connections (SO_SNDBUF and SO_RCVBUF, e.g. 4M), as iperf3 -w; the listener keeps its own. (`connect`\'s -w is --wait here.)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l logfile -d 'Write everything that would go to stdout to FILE instead (appending), as iperf3 --logfile' -r -F
complete -c msock -n "__fish_msock_using_subcommand bench" -s c -l client -d 'iperf3\'s client flag: give HOST:PORT alone instead (prints a hint, exits 2)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l retry-interval -d 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l peer-key -d 'The listener\'s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this host is pinned and later required (trust on first use, like ssh; see ENCRYPTION in `msock --help`)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l iface -d 'Only use this interface; repeat for several, in order of preference. A NAME this machine does not have is warned about and used if it appears; with none of the names here (--iface and --backup), connecting is refused, listing the interfaces there are' -r -f -a '(_msock_ifaces)'
complete -c msock -n "__fish_msock_using_subcommand bench" -l backup -d 'Use this interface only while no other is usable; repeatable' -r -f -a '(_msock_ifaces)'
complete -c msock -n "__fish_msock_using_subcommand bench" -l iface-kind -d 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces. A NAME this machine does not have is warned about (as with --iface) and applies if it appears' -r -f -a '(_msock_iface_kinds)'
complete -c msock -n "__fish_msock_using_subcommand bench" -l idle-timeout -d 'End a session that has sent and received no data for this long (e.g. 30s, 2m)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l resume-timeout -d 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l keepalive -d 'Probe a flowpath with a PING when nothing arrived on it for this long' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l dead-time -d 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l psk-file -d 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener\'s key and this one' -r -F
complete -c msock -n "__fish_msock_using_subcommand bench" -l wait -d 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -l source -d 'Local address to connect from (instead of choosing interfaces by a policy)' -r
complete -c msock -n "__fish_msock_using_subcommand bench" -s C -l congestion -d 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system\'s' -r -f -a '(_msock_congestion)'
complete -c msock -n "__fish_msock_using_subcommand bench" -s R -l reverse -d 'Reverse: the listener sends, we receive'
complete -c msock -n "__fish_msock_using_subcommand bench" -l bidir -d 'Both directions at once (each is reported on its own)'
complete -c msock -n "__fish_msock_using_subcommand bench" -l get-server-output -d 'Also show the listener\'s own figures of each test (its intervals and totals, and its CPU time): after the client\'s, or under "server_output_json" with --json'
complete -c msock -n "__fish_msock_using_subcommand bench" -s s -l server -d 'iperf3\'s server flag. msock bench is the client only: this prints where the server is (`msock listen -k PORT`) and exits with status 2'
complete -c msock -n "__fish_msock_using_subcommand bench" -l compare-tcp -d 'After the msock test, run the same test over one plain TCP connection to the same listener (which must serve more than one client: `msock listen -k`) and print the goodput ratio'
complete -c msock -n "__fish_msock_using_subcommand bench" -s J -l json -d 'Print one JSON document on stdout at the end, in iperf3 -J\'s schema (start.connected, start.test_start, intervals[].streams and .sum, end.streams, end.sum_sent, end.sum_received, end.cpu_utilization_percent, error); what msock adds (flowpaths, re-sent bytes, RTT per flowpath) is under "msock" keys'
complete -c msock -n "__fish_msock_using_subcommand bench" -l json-stream -d 'Print one JSON object per line on stdout as things happen: {"event": "start", "interval", "end" or "error", "data": ...}, as iperf3 --json-stream'
complete -c msock -n "__fish_msock_using_subcommand bench" -l stripe -d 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)'
complete -c msock -n "__fish_msock_using_subcommand bench" -l prefer-wifi -d 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)'
complete -c msock -n "__fish_msock_using_subcommand bench" -l prefer-cellular -d 'Like --prefer-wifi, for cellular'
complete -c msock -n "__fish_msock_using_subcommand bench" -s 4 -d 'Use IPv4 addresses only'
complete -c msock -n "__fish_msock_using_subcommand bench" -s 6 -d 'Use IPv6 addresses only'
complete -c msock -n "__fish_msock_using_subcommand bench" -l json-events -d 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
complete -c msock -n "__fish_msock_using_subcommand bench" -l no-encrypt -d 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session\'s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
complete -c msock -n "__fish_msock_using_subcommand bench" -s v -l verbose -d 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
complete -c msock -n "__fish_msock_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c msock -n "__fish_msock_using_subcommand bench" -s V -l version -d 'Print version'
complete -c msock -n "__fish_msock_using_subcommand proxy" -l listen -d 'Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l auth-keys -d 'Require a registration key: FILE holds one key per line (at least 16 characters, e.g. from `openssl rand -hex 32`; lines starting with # are comments). Listeners give theirs with --relay-key-file' -r -F
complete -c msock -n "__fish_msock_using_subcommand proxy" -l state -d 'Keep names and their secrets in FILE (JSON, mode 0600), so that they survive a restart of the relay. Default: in memory only' -r -F
complete -c msock -n "__fish_msock_using_subcommand proxy" -l name-ttl -d 'Forget a name (and its secret) when its listener has been gone this long. A name no listener stayed on (its control channel closed before its first keepalive and carried no session) is forgotten after 10 minutes, or this if shorter' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l max-flowpaths -d 'Most flowpaths carried at once (each session has one or more)' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l max-flowpaths-per-source -d 'Most flowpaths carried at once for one client address (running or starting)' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l max-pending-per-name -d 'Most flowpaths to one name still starting at once (waiting for the client\'s session or for the listener\'s answer); one client address may have half of them. A flowpath whose session does not start within --handshake-timeout is closed' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l max-names -d 'Most names registered at once' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l max-names-per-source -d 'Most names registered from one address (not counted with --auth-keys, where every listener holds an operator key). Registrations from one address are also limited to 1 per second, in bursts of 20' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l rate -d 'New client flowpaths (and lookups) per second from one address, in bursts of up to twice that; 0 for no limit' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l handshake-timeout -d 'Drop a connection that sends no first frame within this long, a client flowpath whose session does not begin within it (no msock preamble after ROUTE), whose listener does not dial back or answer within it, or that stays half closed and quiet this long' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l idle-timeout -d 'Close a spliced flowpath that carried no byte either way for this long (sessions send keepalives every few seconds, so only dead ones are closed)' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l keepalive -d 'How often listeners send keepalives on their control channel (told to them when they register, in whole seconds: 1s to 1h); a channel silent for three times this is dropped' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l metrics -d 'Print one JSON object per line on stdout for each event (registered, unregistered, expired, splice, splice_end, refused, dropped) and the summary at exit. Serve Prometheus metrics (OpenMetrics text) on `GET /metrics` at this address: registrations, lookups, spliced flowpaths, bytes each way, refusals by reason, names, listeners connected, open flowpaths, registration and lookup latency histograms. Keep it on a private address: it names no names, but shows the relay\'s load' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l rate-per-name -d 'Cap what the flowpaths of one name move, in bytes per second each way (e.g. `10M` = 10 MiB/s; K, M, G are powers of 1024). Shared by all the name\'s clients' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l rate-per-source -d 'Cap what the flowpaths of one client address move, in bytes per second each way' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l etcd -d 'Share names with the other relays of a cluster through etcd at these client URLs (http://HOST:PORT, comma-separated; tried in turn): any relay of the cluster then registers any name and reaches any listener. Needs --cluster-key-file. Without etcd (down, no quorum) the relay keeps what it has and refuses new registrations with "registry unavailable"' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l cluster-key-file -d 'With --etcd: FILE holds the cluster key, the same at every relay of the cluster (at least 32 characters, e.g. from `openssl rand -hex 32`). It seals the names\' secrets in etcd and authenticates the relays to each other' -r -F
complete -c msock -n "__fish_msock_using_subcommand proxy" -l relay-id -d 'With --etcd: this relay\'s id in the cluster (letters, digits, \'.\', \'_\', \'-\'; default: the advertised address with \':\', \'[\' and \']\' as \'_\', e.g. 10.0.0.1_7480). A relay whose id another live relay of the cluster holds refuses to start' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l advertise -d 'With --etcd: the address at which listeners and the other relays reach this relay (default: the --listen address, when it is not a wildcard)' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l etcd-prefix -d 'With --etcd: prefix of the cluster\'s keys in etcd (several clusters can share one etcd); a \'/\' is added when it does not end with one' -r
complete -c msock -n "__fish_msock_using_subcommand proxy" -l json
complete -c msock -n "__fish_msock_using_subcommand proxy" -s v -l verbose -d 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
complete -c msock -n "__fish_msock_using_subcommand proxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c msock -n "__fish_msock_using_subcommand proxy" -s V -l version -d 'Print version'
complete -c msock -n "__fish_msock_using_subcommand help; and not __fish_seen_subcommand_from listen connect send-file bench proxy help" -f -a "listen" -d 'Wait for a connection and copy it to stdout, stdin to it (like `nc -l`)'
complete -c msock -n "__fish_msock_using_subcommand help; and not __fish_seen_subcommand_from listen connect send-file bench proxy help" -f -a "connect" -d 'Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`)'
complete -c msock -n "__fish_msock_using_subcommand help; and not __fish_seen_subcommand_from listen connect send-file bench proxy help" -f -a "send-file" -d 'Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with progress'
complete -c msock -n "__fish_msock_using_subcommand help; and not __fish_seen_subcommand_from listen connect send-file bench proxy help" -f -a "bench" -d 'Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run the built-in loopback benchmark'
complete -c msock -n "__fish_msock_using_subcommand help; and not __fish_seen_subcommand_from listen connect send-file bench proxy help" -f -a "proxy" -d 'Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST --name NAME`) and clients reach them as NAME@HOST'
complete -c msock -n "__fish_msock_using_subcommand help; and not __fish_seen_subcommand_from listen connect send-file bench proxy help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
