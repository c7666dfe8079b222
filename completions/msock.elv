
use builtin;
use str;

set edit:completion:arg-completer[msock] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'msock'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'msock'= {
            cand -v 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand --verbose 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand listen 'Wait for a connection and copy it to stdout, stdin to it (like `nc -l`)'
            cand connect 'Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`)'
            cand send-file 'Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with progress'
            cand bench 'Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run the built-in loopback benchmark'
            cand proxy 'Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST --name NAME`) and clients reach them as NAME@HOST'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'msock;listen'= {
            cand --relay 'Also listen through the relay at HOST[:PORT] (default port 7480), under --name: works behind NAT, since the listener connects out. Re-registers after address changes'
            cand --name 'The name to register at the relay; clients connect to NAME@HOST[:PORT]. The first registration returns a secret, kept in $MSOCK_STATE_DIR, $XDG_STATE_HOME/msock or ~/.local/state/msock (relay-names/RELAY/NAME.secret); only its holder can register the name again'
            cand --relay-key-file 'A file whose first line is the registration key, for a relay started with --auth-keys'
            cand --authorized-keys 'Admit only clients whose key is listed in FILE: one fingerprint per line (SHA256:..., as `msock connect --show-key` prints it; words after it are a comment), lines starting with # and blank lines ignored. Applies to every service (byte streams, files, benchmarks). The file is re-read when it changes (checked as each session opens), so no restart is needed. A refused client is told the fingerprint to add. Needs encryption'
            cand --max-sessions 'Most sessions served at once with -k (of every kind: streams, files, benchmarks); the client beyond is told the listener is busy. Connections still in their handshake are capped too, at the same number (at least 64)'
            cand --detect-wait 'How long a new client may stay silent before it is taken for plain TCP (served with --allow-plain, else told so and closed; then at least 2s, so that a slow msock client is not refused)'
            cand --save-dir 'Accept files from `msock send-file` into DIR (created if missing). Without it, file offers are refused. Files are verified (BLAKE3) before they get their final name, and an interrupted transfer resumes when the sender runs again'
            cand --max-size 'Refuse file offers larger than SIZE in total (e.g. 500M, 4G). Offers larger than the free space in --save-dir are always refused'
            cand --forward 'Port forwarding: join each session to a new TCP connection to HOST:PORT (like `socat TCP-LISTEN,fork TCP:HOST:PORT`) instead of stdin and stdout; with -k, sessions are served at the same time. Clients use `msock connect --local PORT` or ssh''s ProxyCommand. Needs --authorized-keys or --psk-file, or --allow-anyone'
            cand -e 'Run a program for each session, its stdin and stdout wired to the session (as ncat -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no shell). `msock connect` exits with the program''s exit status. It keeps running while its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds MSOCK_PEER_ADDR (the client''s address at the start), MSOCK_SESSION (the session id) and MSOCK_PEER_KEY (the client''s key fingerprint, when the client has a key). Needs --authorized-keys or --psk-file, or --allow-anyone'
            cand --exec 'Run a program for each session, its stdin and stdout wired to the session (as ncat -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no shell). `msock connect` exits with the program''s exit status. It keeps running while its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds MSOCK_PEER_ADDR (the client''s address at the start), MSOCK_SESSION (the session id) and MSOCK_PEER_KEY (the client''s key fingerprint, when the client has a key). Needs --authorized-keys or --psk-file, or --allow-anyone'
            cand -c 'Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c)'
            cand --sh-exec 'Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c)'
            cand --idle-timeout 'End a session that has sent and received no data for this long (e.g. 30s, 2m)'
            cand --resume-timeout 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree'
            cand --keepalive 'Probe a flowpath with a PING when nothing arrived on it for this long'
            cand --dead-time 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long'
            cand --congestion 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s'
            cand --psk-file 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one'
            cand --show-key 'Print this listener''s key fingerprint (to give to clients for --peer-key) and exit. The key is created on first use, in the config directory (see ENCRYPTION below)'
            cand --allow-anyone 'Let --exec, --sh-exec and --forward run without --authorized-keys or --psk-file: anyone who reaches this listener gets the program or the target. Plain TCP clients (which prove no key) reach them only with this and --allow-plain'
            cand -k 'Keep listening: serve clients at the same time (up to --max-sessions) and go on after each (see "Several clients" below for stdin and stdout)'
            cand --keep-open 'Keep listening: serve clients at the same time (up to --max-sessions) and go on after each (see "Several clients" below for stdin and stdout)'
            cand --allow-plain 'Also serve clients that do not speak msock (nc, telnet) as plain TCP: NOT encrypted, NOT authenticated, no mobility; stderr says so for each. Without it they get one line saying so and are closed. Not with --authorized-keys or --psk-file: a plain client cannot prove a key'
            cand --overwrite 'Replace existing files that differ from the ones offered (default: refuse the file and tell the sender)'
            cand --pty 'With --exec/--sh-exec: run the program under a pseudo-terminal (a remote shell: `msock listen -k 2022 --sh-exec "$SHELL -l" --pty`). `msock connect` then puts its terminal in raw mode and sends its window size'
            cand --stderr 'With --exec/--sh-exec: send the program''s stderr to the client too (default: to this listener''s stderr). Under --pty it always goes to the terminal'
            cand --recv-only 'Only receive: do not read stdin, close our sending side at once'
            cand --send-only 'Only send: discard whatever the peer sends instead of writing it to stdout'
            cand -4 'Use IPv4 addresses only'
            cand -6 'Use IPv6 addresses only'
            cand --json-events 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
            cand --no-encrypt 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
            cand -v 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand --verbose 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'msock;connect'= {
            cand --local 'Forward a local TCP port to the listener (like `ssh -L`): accept connections on [ADDR:]PORT (ADDR 127.0.0.1 unless given) and carry each over a session of its own, which keeps the program''s connection alive across moves. The listener runs with --forward HOST:PORT. Runs until interrupted'
            cand -w 'Give up connecting (TCP connect and msock handshake) after this long'
            cand --wait 'Give up connecting (TCP connect and msock handshake) after this long'
            cand -s 'Local address to connect from (instead of choosing interfaces by a policy)'
            cand --source 'Local address to connect from (instead of choosing interfaces by a policy)'
            cand --retry-interval 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout'
            cand --peer-key 'The listener''s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this HOST:PORT is pinned and later required (trust on first use, like ssh)'
            cand --iface 'Only use this interface; repeat for several, in order of preference'
            cand --backup 'Use this interface only while no other is usable; repeatable'
            cand --iface-kind 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces'
            cand --idle-timeout 'End a session that has sent and received no data for this long (e.g. 30s, 2m)'
            cand --resume-timeout 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree'
            cand --keepalive 'Probe a flowpath with a PING when nothing arrived on it for this long'
            cand --dead-time 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long'
            cand --congestion 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s'
            cand --psk-file 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one'
            cand --show-key 'Print this client''s key fingerprint (for a listener''s --authorized-keys) and exit. The key is created on first use, in the config directory (see ENCRYPTION below); send-file and bench use the same key'
            cand --plain 'Talk plain TCP (no msock session) to a server that does not speak msock: one TCP connection, so no interface policies and no reconnecting'
            cand --list-ifaces 'Print the network interfaces msock sees, what kind each is (wifi, cellular, ethernet, loopback, tunnel, other) and how that was decided (sysfs, name, user, flags), then exit without connecting'
            cand --recv-only 'Only receive: do not read stdin, close our sending side at once'
            cand --send-only 'Only send: discard whatever the peer sends instead of writing it to stdout'
            cand --stripe 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)'
            cand --prefer-wifi 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)'
            cand --prefer-cellular 'Like --prefer-wifi, for cellular'
            cand -4 'Use IPv4 addresses only'
            cand -6 'Use IPv6 addresses only'
            cand --json-events 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
            cand --no-encrypt 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
            cand -v 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand --verbose 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'msock;send-file'= {
            cand --name 'The file name the receiver gives stdin''s bytes (with PATH `-`)'
            cand -w 'Give up connecting (TCP connect and msock handshake) after this long'
            cand --wait 'Give up connecting (TCP connect and msock handshake) after this long'
            cand -s 'Local address to connect from (instead of choosing interfaces by a policy)'
            cand --source 'Local address to connect from (instead of choosing interfaces by a policy)'
            cand --retry-interval 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout'
            cand --peer-key 'The listener''s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this HOST:PORT is pinned and later required (trust on first use, like ssh)'
            cand --iface 'Only use this interface; repeat for several, in order of preference'
            cand --backup 'Use this interface only while no other is usable; repeatable'
            cand --iface-kind 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces'
            cand --idle-timeout 'End a session that has sent and received no data for this long (e.g. 30s, 2m)'
            cand --resume-timeout 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree'
            cand --keepalive 'Probe a flowpath with a PING when nothing arrived on it for this long'
            cand --dead-time 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long'
            cand --congestion 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s'
            cand --psk-file 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one'
            cand -q 'Print nothing on stderr but errors (no progress bar, no summary)'
            cand --quiet 'Print nothing on stderr but errors (no progress bar, no summary)'
            cand --json 'At the end, print one JSON object on stdout: files, bytes, seconds, rate, resumed bytes, bytes per flowpath and each file''s hash'
            cand --stripe 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)'
            cand --prefer-wifi 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)'
            cand --prefer-cellular 'Like --prefer-wifi, for cellular'
            cand -4 'Use IPv4 addresses only'
            cand -6 'Use IPv6 addresses only'
            cand --json-events 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
            cand --no-encrypt 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
            cand -v 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand --verbose 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'msock;bench'= {
            cand -t 'How long to send (e.g. 10s, 1m). The built-in run (no HOST:PORT) gives each of its three tests a third of it'
            cand --time 'How long to send (e.g. 10s, 1m). The built-in run (no HOST:PORT) gives each of its three tests a third of it'
            cand -n 'Send this many bytes of payload instead of sending for --time (e.g. 1G); each direction with --bidir, each test in the built-in run'
            cand --bytes 'Send this many bytes of payload instead of sending for --time (e.g. 1G); each direction with --bidir, each test in the built-in run'
            cand -i 'Print the receiver''s figures every DURATION (0: only the totals; from 10ms to a day)'
            cand --interval 'Print the receiver''s figures every DURATION (0: only the totals; from 10ms to a day)'
            cand -l 'Size of each block the sender hands over (e.g. 128K; at most 16M). Blocks go to the session or socket in pieces of at most 256 KiB'
            cand --len 'Size of each block the sender hands over (e.g. 128K; at most 16M). Blocks go to the session or socket in pieces of at most 256 KiB'
            cand --omit 'Leave the first DURATION of the data out of the totals (TCP slow start); its intervals are marked omitted. With --time only: a -n test may end within it'
            cand -w 'Give up connecting (TCP connect and msock handshake) after this long'
            cand --wait 'Give up connecting (TCP connect and msock handshake) after this long'
            cand -s 'Local address to connect from (instead of choosing interfaces by a policy)'
            cand --source 'Local address to connect from (instead of choosing interfaces by a policy)'
            cand --retry-interval 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout'
            cand --peer-key 'The listener''s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this HOST:PORT is pinned and later required (trust on first use, like ssh)'
            cand --iface 'Only use this interface; repeat for several, in order of preference'
            cand --backup 'Use this interface only while no other is usable; repeatable'
            cand --iface-kind 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces'
            cand --idle-timeout 'End a session that has sent and received no data for this long (e.g. 30s, 2m)'
            cand --resume-timeout 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree'
            cand --keepalive 'Probe a flowpath with a PING when nothing arrived on it for this long'
            cand --dead-time 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long'
            cand --congestion 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s'
            cand --psk-file 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one'
            cand -R 'Reverse: the listener sends, we receive'
            cand --reverse 'Reverse: the listener sends, we receive'
            cand --bidir 'Both directions at once (each is reported on its own)'
            cand --compare-tcp 'After the msock test, run the same test over one plain TCP connection to the same listener (which must serve more than one client: `msock listen -k`) and print the goodput ratio'
            cand --json 'Print one JSON document on stdout at the end, with iperf3''s key names where they apply (start, intervals[].sum, end.sum_sent, end.sum_received, cpu_utilization_percent, error); flowpaths are under "paths"'
            cand --json-stream 'Print one JSON object per line on stdout as things happen: {"event": "start", "interval", "end" or "error", "data": ...}, as iperf3 --json-stream'
            cand --stripe 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)'
            cand --prefer-wifi 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)'
            cand --prefer-cellular 'Like --prefer-wifi, for cellular'
            cand -4 'Use IPv4 addresses only'
            cand -6 'Use IPv6 addresses only'
            cand --json-events 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts'
            cand --no-encrypt 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later'
            cand -v 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand --verbose 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'msock;proxy'= {
            cand --listen 'Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT'
            cand --auth-keys 'Require a registration key: FILE holds one key per line (at least 16 characters, e.g. from `openssl rand -hex 32`; lines starting with # are comments). Listeners give theirs with --relay-key-file'
            cand --state 'Keep names and their secrets in FILE (JSON, mode 0600), so that they survive a restart of the relay. Default: in memory only'
            cand --name-ttl 'Forget a name (and its secret) when its listener has been gone this long. A name no listener stayed on (its control channel closed before its first keepalive and carried no session) is forgotten after 10 minutes, or this if shorter'
            cand --max-flowpaths 'Most flowpaths carried at once (each session has one or more)'
            cand --max-flowpaths-per-source 'Most flowpaths carried at once for one client address (running or starting)'
            cand --max-pending-per-name 'Most flowpaths to one name still starting at once (waiting for the client''s session or for the listener''s answer); one client address may have half of them. A flowpath whose session does not start within --handshake-timeout is closed'
            cand --max-names 'Most names registered at once'
            cand --max-names-per-source 'Most names registered from one address (not counted with --auth-keys, where every listener holds an operator key). Registrations from one address are also limited to 1 per second, in bursts of 20'
            cand --rate 'New client flowpaths (and lookups) per second from one address, in bursts of up to twice that; 0 for no limit'
            cand --handshake-timeout 'Drop a connection that sends no first frame within this long, a client flowpath whose session does not begin within it (no msock preamble after ROUTE), whose listener does not dial back or answer within it, or that stays half closed and quiet this long'
            cand --idle-timeout 'Close a spliced flowpath that carried no byte either way for this long (sessions send keepalives every few seconds, so only dead ones are closed)'
            cand --keepalive 'How often listeners send keepalives on their control channel (told to them when they register, in whole seconds: 1s to 1h); a channel silent for three times this is dropped'
            cand --json 'Print one JSON object per line on stdout for each event (registered, unregistered, expired, splice, splice_end, refused, dropped) and the summary at exit'
            cand -v 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand --verbose 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'msock;help'= {
            cand listen 'Wait for a connection and copy it to stdout, stdin to it (like `nc -l`)'
            cand connect 'Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`)'
            cand send-file 'Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with progress'
            cand bench 'Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run the built-in loopback benchmark'
            cand proxy 'Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST --name NAME`) and clients reach them as NAME@HOST'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'msock;help;listen'= {
        }
        &'msock;help;connect'= {
        }
        &'msock;help;send-file'= {
        }
        &'msock;help;bench'= {
        }
        &'msock;help;proxy'= {
        }
        &'msock;help;help'= {
        }
    ]
    $completions[$command]
}
