
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'msock' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'msock'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'msock' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('listen', 'listen', [CompletionResultType]::ParameterValue, 'Wait for a connection and copy it to stdout, stdin to it (like `nc -l`)')
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`)')
            [CompletionResult]::new('send-file', 'send-file', [CompletionResultType]::ParameterValue, 'Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with progress')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run the built-in loopback benchmark')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST --name NAME`) and clients reach them as NAME@HOST')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'msock;listen' {
            [CompletionResult]::new('--relay', '--relay', [CompletionResultType]::ParameterName, 'Also listen through the relay at HOST[:PORT] (default port 7480), under --name: works behind NAT, since the listener connects out. Re-registers after address changes. Repeat it (or separate relays by commas, up to 8) to register the same name at several relays, each with its own secret and control channel: the listener serves through any of them, and clients that list them (NAME@A,B) fail over when one dies. For relays of one cluster give --relay-cluster. stderr says which relays the name is registered at after each change. --code takes one relay')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The name to register at the relay; clients connect to NAME@HOST[:PORT]. The first registration returns a secret, kept in $MSOCK_STATE_DIR, $XDG_STATE_HOME/msock or ~/.local/state/msock (relay-names/RELAY/NAME.secret); only its holder can register the name again')
            [CompletionResult]::new('--relay-key-file', '--relay-key-file', [CompletionResultType]::ParameterName, 'A file whose first line is the registration key, for a relay started with --auth-keys (the relay of --relay, or with --code the one from config.toml)')
            [CompletionResult]::new('--authorized-keys', '--authorized-keys', [CompletionResultType]::ParameterName, 'Admit only clients whose key is listed in FILE: one fingerprint per line (SHA256:..., as `msock connect --show-key` prints it; words after it are a comment), lines starting with # and blank lines ignored. Applies to every service (byte streams, files, benchmarks). The file is re-read when it changes (checked as each session opens), so no restart is needed. A refused client is told the fingerprint to add. Needs encryption')
            [CompletionResult]::new('--max-sessions', '--max-sessions', [CompletionResultType]::ParameterName, 'Most sessions served at once with -k (of every kind: streams, files, benchmarks); the client beyond is told the listener is busy. Connections still in their handshake are capped too, at the same number (at least 64)')
            [CompletionResult]::new('--detect-wait', '--detect-wait', [CompletionResultType]::ParameterName, 'How long a new client may stay silent before it is taken for plain TCP (served with --allow-plain, else told so and closed; then at least 2s, so that a slow msock client is not refused)')
            [CompletionResult]::new('--save-dir', '--save-dir', [CompletionResultType]::ParameterName, 'Accept files from `msock send-file` into DIR (created if missing). Without it, file offers are refused. Files are verified (BLAKE3) before they get their final name, and an interrupted transfer resumes when the sender runs again')
            [CompletionResult]::new('--max-size', '--max-size', [CompletionResultType]::ParameterName, 'Refuse file offers larger than SIZE in total (e.g. 500M, 4G). Offers larger than the free space in --save-dir are always refused')
            [CompletionResult]::new('--forward', '--forward', [CompletionResultType]::ParameterName, 'Port forwarding: join each session to a new TCP connection to HOST:PORT (like `socat TCP-LISTEN,fork TCP:HOST:PORT`) instead of stdin and stdout; with -k, sessions are served at the same time. Clients use `msock connect --local PORT` or ssh''s ProxyCommand. Needs --authorized-keys or --psk-file, or --allow-anyone')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Run a program for each session, its stdin and stdout wired to the session (as ncat -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no shell). `msock connect` exits with the program''s exit status. It keeps running while its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds MSOCK_PEER_ADDR (the client''s address at the start), MSOCK_SESSION (the session id) and MSOCK_PEER_KEY (the client''s key fingerprint, when the client has a key). Needs --authorized-keys or --psk-file, or --allow-anyone')
            [CompletionResult]::new('--exec', '--exec', [CompletionResultType]::ParameterName, 'Run a program for each session, its stdin and stdout wired to the session (as ncat -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no shell). `msock connect` exits with the program''s exit status. It keeps running while its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds MSOCK_PEER_ADDR (the client''s address at the start), MSOCK_SESSION (the session id) and MSOCK_PEER_KEY (the client''s key fingerprint, when the client has a key). Needs --authorized-keys or --psk-file, or --allow-anyone')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c)')
            [CompletionResult]::new('--sh-exec', '--sh-exec', [CompletionResultType]::ParameterName, 'Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c)')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'End a session that has sent and received no data for this long (e.g. 30s, 2m)')
            [CompletionResult]::new('--resume-timeout', '--resume-timeout', [CompletionResultType]::ParameterName, 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'Probe a flowpath with a PING when nothing arrived on it for this long')
            [CompletionResult]::new('--dead-time', '--dead-time', [CompletionResultType]::ParameterName, 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long')
            [CompletionResult]::new('--congestion', '--congestion', [CompletionResultType]::ParameterName, 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s')
            [CompletionResult]::new('--psk-file', '--psk-file', [CompletionResultType]::ParameterName, 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one')
            [CompletionResult]::new('--show-key', '--show-key', [CompletionResultType]::ParameterName, 'Print this listener''s key fingerprint (to give to clients for --peer-key) and exit. The key is created on first use, in the config directory (see ENCRYPTION below)')
            [CompletionResult]::new('--relay-cluster', '--relay-cluster', [CompletionResultType]::ParameterName, 'The --relay relays are of one cluster (msock proxy --etcd): the name is registered at one of them at a time with the cluster''s one secret (relay-clusters/ in the state directory), and the others stand by and take it over at once when its channel is lost. Only for relays you know to be of that cluster: the cluster''s identity is public, so a relay that merely claims it could pass the listener''s proof on to the real cluster. Without it, each relay gets its own registration and secret, and relays of one cluster refuse all but the first ("name taken")')
            [CompletionResult]::new('--code', '--code', [CompletionResultType]::ParameterName, 'Wait for a sender by code: register a fresh code''s number at the relay (--relay, else `relay = "HOST:PORT"` in config.toml in the config directory), print `code: 7-tulip-orbit-canyon` on stderr and wait for `msock send-file --code CODE FILES` or `msock connect --code CODE`. The words (3 of 7776: 38.8 bits) never leave the two machines: a password-authenticated key exchange (SPAKE2) turns the code into the session''s pre-shared key, and a wrong code fails on both sides before any byte of a file is sent. The code is burned after it paired once or after three tries (an attacker''s chance per try is 1 in 7776^3, 2.1e-12); the listener ends after its first session that ended well. A killed sender runs its command again and resumes without pairing again; a killed listener resumes with --resume. With a relay started with --auth-keys, give --relay-key-file')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'With --code: instead of a new code, serve again the pairing of the last `listen --code` killed before its transfer ended (same --relay and --save-dir; its ticket is kept in the state directory, pairing/RELAY/listener-NAME.ticket). Then the sender runs its command again: both resume from the partial files, and nobody types a code')
            [CompletionResult]::new('--allow-anyone', '--allow-anyone', [CompletionResultType]::ParameterName, 'Let --exec, --sh-exec and --forward run without --authorized-keys or --psk-file: anyone who reaches this listener gets the program or the target. Plain TCP clients (which prove no key) reach them only with this and --allow-plain')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Keep listening: serve clients at the same time (up to --max-sessions) and go on after each (see "Several clients" below for stdin and stdout)')
            [CompletionResult]::new('--keep-open', '--keep-open', [CompletionResultType]::ParameterName, 'Keep listening: serve clients at the same time (up to --max-sessions) and go on after each (see "Several clients" below for stdin and stdout)')
            [CompletionResult]::new('--allow-plain', '--allow-plain', [CompletionResultType]::ParameterName, 'Also serve clients that do not speak msock (nc, telnet) as plain TCP: NOT encrypted, NOT authenticated, no mobility; stderr says so for each. Without it they get one line saying so and are closed. Not with --authorized-keys or --psk-file: a plain client cannot prove a key')
            [CompletionResult]::new('--overwrite', '--overwrite', [CompletionResultType]::ParameterName, 'Replace existing files that differ from the ones offered (default: refuse the file and tell the sender)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Accept file offers without asking. Without it, a --save-dir listener whose stdin and stderr are a terminal asks before accepting an offer from a sender key it has not seen ("accept 3 files, 1.2 GB, from SHA256:... at ADDR? [y/N]"; its stdin then answers and is not sent to byte-stream sessions); a key is seen when it is in --authorized-keys or in `accepted_senders` in the config directory, where each accepted key is added. A refused sender is told that the receiver declined. Other listeners accept and log each offer on stderr')
            [CompletionResult]::new('--pty', '--pty', [CompletionResultType]::ParameterName, 'With --exec/--sh-exec: run the program under a pseudo-terminal (a remote shell: `msock listen -k 2022 --sh-exec "$SHELL -l" --pty`). `msock connect` then puts its terminal in raw mode and sends its window size')
            [CompletionResult]::new('--stderr', '--stderr', [CompletionResultType]::ParameterName, 'With --exec/--sh-exec: send the program''s stderr to the client too (default: to this listener''s stderr). Under --pty it always goes to the terminal')
            [CompletionResult]::new('--recv-only', '--recv-only', [CompletionResultType]::ParameterName, 'Only receive: do not read stdin, close our sending side at once')
            [CompletionResult]::new('--send-only', '--send-only', [CompletionResultType]::ParameterName, 'Only send: discard whatever the peer sends instead of writing it to stdout')
            [CompletionResult]::new('-4', '-4', [CompletionResultType]::ParameterName, 'Use IPv4 addresses only')
            [CompletionResult]::new('-6', '-6', [CompletionResultType]::ParameterName, 'Use IPv6 addresses only')
            [CompletionResult]::new('--json-events', '--json-events', [CompletionResultType]::ParameterName, 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts')
            [CompletionResult]::new('--no-encrypt', '--no-encrypt', [CompletionResultType]::ParameterName, 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'msock;connect' {
            [CompletionResult]::new('--forget-key', '--forget-key', [CompletionResultType]::ParameterName, 'Remove the listener key pinned for DEST from known_peers and exit, printing each line removed (like `ssh-keygen -R`; exit 0 also when nothing was pinned). DEST HOST removes every line naming HOST; HOST:PORT the lines a connection there would use')
            [CompletionResult]::new('--code', '--code', [CompletionResultType]::ParameterName, 'Connect to the `msock listen --code` that printed CODE (e.g. 7-tulip-orbit-canyon), through its relay; see `msock listen --code`')
            [CompletionResult]::new('--local', '--local', [CompletionResultType]::ParameterName, 'Forward a local TCP port to the listener (like `ssh -L`): accept connections on [ADDR:]PORT (ADDR 127.0.0.1 unless given) and carry each over a session of its own, which keeps the program''s connection alive across moves. The listener runs with --forward HOST:PORT. Runs until interrupted')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Local address to connect from (instead of choosing interfaces by a policy)')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Local address to connect from (instead of choosing interfaces by a policy)')
            [CompletionResult]::new('--retry-interval', '--retry-interval', [CompletionResultType]::ParameterName, 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout')
            [CompletionResult]::new('--peer-key', '--peer-key', [CompletionResultType]::ParameterName, 'The listener''s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this host is pinned and later required (trust on first use, like ssh; see ENCRYPTION in `msock --help`)')
            [CompletionResult]::new('--iface', '--iface', [CompletionResultType]::ParameterName, 'Only use this interface; repeat for several, in order of preference. A NAME this machine does not have is warned about and used if it appears; with none of the names here (--iface and --backup), connecting is refused, listing the interfaces there are')
            [CompletionResult]::new('--backup', '--backup', [CompletionResultType]::ParameterName, 'Use this interface only while no other is usable; repeatable')
            [CompletionResult]::new('--iface-kind', '--iface-kind', [CompletionResultType]::ParameterName, 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces. A NAME this machine does not have is warned about (as with --iface) and applies if it appears')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'End a session that has sent and received no data for this long (e.g. 30s, 2m)')
            [CompletionResult]::new('--resume-timeout', '--resume-timeout', [CompletionResultType]::ParameterName, 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'Probe a flowpath with a PING when nothing arrived on it for this long')
            [CompletionResult]::new('--dead-time', '--dead-time', [CompletionResultType]::ParameterName, 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long')
            [CompletionResult]::new('--congestion', '--congestion', [CompletionResultType]::ParameterName, 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s')
            [CompletionResult]::new('--psk-file', '--psk-file', [CompletionResultType]::ParameterName, 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one')
            [CompletionResult]::new('--show-key', '--show-key', [CompletionResultType]::ParameterName, 'Print this client''s key fingerprint (for a listener''s --authorized-keys) and exit. The key is created on first use, in the config directory (see ENCRYPTION below); send-file and bench use the same key')
            [CompletionResult]::new('--plain', '--plain', [CompletionResultType]::ParameterName, 'Talk plain TCP (no msock session) to a server that does not speak msock: one TCP connection, so no interface policies and no reconnecting')
            [CompletionResult]::new('--list-ifaces', '--list-ifaces', [CompletionResultType]::ParameterName, 'Print the network interfaces msock sees, what kind each is (wifi, cellular, ethernet, loopback, tunnel, other) and how that was decided (sysfs, name, user, flags), then exit without connecting')
            [CompletionResult]::new('--recv-only', '--recv-only', [CompletionResultType]::ParameterName, 'Only receive: do not read stdin, close our sending side at once')
            [CompletionResult]::new('--send-only', '--send-only', [CompletionResultType]::ParameterName, 'Only send: discard whatever the peer sends instead of writing it to stdout')
            [CompletionResult]::new('--stripe', '--stripe', [CompletionResultType]::ParameterName, 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)')
            [CompletionResult]::new('--prefer-wifi', '--prefer-wifi', [CompletionResultType]::ParameterName, 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)')
            [CompletionResult]::new('--prefer-cellular', '--prefer-cellular', [CompletionResultType]::ParameterName, 'Like --prefer-wifi, for cellular')
            [CompletionResult]::new('-4', '-4', [CompletionResultType]::ParameterName, 'Use IPv4 addresses only')
            [CompletionResult]::new('-6', '-6', [CompletionResultType]::ParameterName, 'Use IPv6 addresses only')
            [CompletionResult]::new('--json-events', '--json-events', [CompletionResultType]::ParameterName, 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts')
            [CompletionResult]::new('--no-encrypt', '--no-encrypt', [CompletionResultType]::ParameterName, 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'msock;send-file' {
            [CompletionResult]::new('--code', '--code', [CompletionResultType]::ParameterName, 'Send to the `msock listen --code` that printed CODE (e.g. 7-tulip-orbit-canyon), through its relay; see `msock listen --code`. Run the same command again after an interruption: it resumes without pairing again (the session''s key is kept in the state directory, pairing/RELAY/NUMBER.ticket, until the transfer ended well). If the listener was killed, it first runs `msock listen --code --resume`')
            [CompletionResult]::new('--text', '--text', [CompletionResultType]::ParameterName, 'With --code: send TEXT (without TEXT: stdin, at most 1 MiB) instead of files; the listener prints it on its stdout')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The file name the receiver gives stdin''s bytes (with PATH `-`)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Local address to connect from (instead of choosing interfaces by a policy)')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Local address to connect from (instead of choosing interfaces by a policy)')
            [CompletionResult]::new('--retry-interval', '--retry-interval', [CompletionResultType]::ParameterName, 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout')
            [CompletionResult]::new('--peer-key', '--peer-key', [CompletionResultType]::ParameterName, 'The listener''s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this host is pinned and later required (trust on first use, like ssh; see ENCRYPTION in `msock --help`)')
            [CompletionResult]::new('--iface', '--iface', [CompletionResultType]::ParameterName, 'Only use this interface; repeat for several, in order of preference. A NAME this machine does not have is warned about and used if it appears; with none of the names here (--iface and --backup), connecting is refused, listing the interfaces there are')
            [CompletionResult]::new('--backup', '--backup', [CompletionResultType]::ParameterName, 'Use this interface only while no other is usable; repeatable')
            [CompletionResult]::new('--iface-kind', '--iface-kind', [CompletionResultType]::ParameterName, 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces. A NAME this machine does not have is warned about (as with --iface) and applies if it appears')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'End a session that has sent and received no data for this long (e.g. 30s, 2m)')
            [CompletionResult]::new('--resume-timeout', '--resume-timeout', [CompletionResultType]::ParameterName, 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'Probe a flowpath with a PING when nothing arrived on it for this long')
            [CompletionResult]::new('--dead-time', '--dead-time', [CompletionResultType]::ParameterName, 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long')
            [CompletionResult]::new('--congestion', '--congestion', [CompletionResultType]::ParameterName, 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s')
            [CompletionResult]::new('--psk-file', '--psk-file', [CompletionResultType]::ParameterName, 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors (no progress bar, no summary)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors (no progress bar, no summary)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'At the end, print one JSON object on stdout: files, bytes, seconds, rate, resumed bytes, bytes per flowpath and each file''s hash')
            [CompletionResult]::new('--stripe', '--stripe', [CompletionResultType]::ParameterName, 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)')
            [CompletionResult]::new('--prefer-wifi', '--prefer-wifi', [CompletionResultType]::ParameterName, 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)')
            [CompletionResult]::new('--prefer-cellular', '--prefer-cellular', [CompletionResultType]::ParameterName, 'Like --prefer-wifi, for cellular')
            [CompletionResult]::new('-4', '-4', [CompletionResultType]::ParameterName, 'Use IPv4 addresses only')
            [CompletionResult]::new('-6', '-6', [CompletionResultType]::ParameterName, 'Use IPv6 addresses only')
            [CompletionResult]::new('--json-events', '--json-events', [CompletionResultType]::ParameterName, 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts')
            [CompletionResult]::new('--no-encrypt', '--no-encrypt', [CompletionResultType]::ParameterName, 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'msock;bench' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'How long to measure (e.g. 10s, 1m), after --omit. The built-in run (no HOST:PORT) gives each of its three tests a third of it')
            [CompletionResult]::new('--time', '--time', [CompletionResultType]::ParameterName, 'How long to measure (e.g. 10s, 1m), after --omit. The built-in run (no HOST:PORT) gives each of its three tests a third of it')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Send this many bytes of payload instead of sending for --time (e.g. 1G); each direction with --bidir, each test in the built-in run')
            [CompletionResult]::new('--bytes', '--bytes', [CompletionResultType]::ParameterName, 'Send this many bytes of payload instead of sending for --time (e.g. 1G); each direction with --bidir, each test in the built-in run')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Print the receiver''s figures every DURATION (0: only the totals; from 10ms to a day)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Print the receiver''s figures every DURATION (0: only the totals; from 10ms to a day)')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Size of each block the sender hands over (e.g. 128K; at most 16M). Blocks go to the session or socket in pieces of at most 256 KiB')
            [CompletionResult]::new('--len', '--len', [CompletionResultType]::ParameterName, 'Size of each block the sender hands over (e.g. 128K; at most 16M). Blocks go to the session or socket in pieces of at most 256 KiB')
            [CompletionResult]::new('-O', '-O ', [CompletionResultType]::ParameterName, 'Send for DURATION more before --time and leave it out of the totals (TCP slow start), as iperf3 -O: `-O 1 -t 3` sends for 4 s and measures the last 3; its intervals are marked omitted. With --time only')
            [CompletionResult]::new('--omit', '--omit', [CompletionResultType]::ParameterName, 'Send for DURATION more before --time and leave it out of the totals (TCP slow start), as iperf3 -O: `-O 1 -t 3` sends for 4 s and measures the last 3; its intervals are marked omitted. With --time only')
            [CompletionResult]::new('-P', '-P ', [CompletionResultType]::ParameterName, 'Run N tests at once, each over a session (or TCP connection) of its own, as iperf3''s parallel streams: a row per stream and a SUM row (at most 128)')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'Run N tests at once, each over a session (or TCP connection) of its own, as iperf3''s parallel streams: a row per stream and a SUM row (at most 128)')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Pace each stream''s sender to RATE bits per second (e.g. 100M, 1G; K, M, G, T are powers of 1000, as iperf3 -b). Default: as fast as it goes')
            [CompletionResult]::new('--bitrate', '--bitrate', [CompletionResultType]::ParameterName, 'Pace each stream''s sender to RATE bits per second (e.g. 100M, 1G; K, M, G, T are powers of 1000, as iperf3 -b). Default: as fast as it goes')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Socket send and receive buffer size of this end''s TCP connections (SO_SNDBUF and SO_RCVBUF, e.g. 4M), as iperf3 -w; the listener keeps its own. (`connect`''s -w is --wait here.)')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'Socket send and receive buffer size of this end''s TCP connections (SO_SNDBUF and SO_RCVBUF, e.g. 4M), as iperf3 -w; the listener keeps its own. (`connect`''s -w is --wait here.)')
            [CompletionResult]::new('--logfile', '--logfile', [CompletionResultType]::ParameterName, 'Write everything that would go to stdout to FILE instead (appending), as iperf3 --logfile')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'iperf3''s client flag: give HOST:PORT alone instead (prints a hint, exits 2)')
            [CompletionResult]::new('--client', '--client', [CompletionResultType]::ParameterName, 'iperf3''s client flag: give HOST:PORT alone instead (prints a hint, exits 2)')
            [CompletionResult]::new('--retry-interval', '--retry-interval', [CompletionResultType]::ParameterName, 'After losing the connection, try to reconnect this often (re-resolving HOST each time) until --resume-timeout')
            [CompletionResult]::new('--peer-key', '--peer-key', [CompletionResultType]::ParameterName, 'The listener''s key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any other key. Without it the key seen first at this host is pinned and later required (trust on first use, like ssh; see ENCRYPTION in `msock --help`)')
            [CompletionResult]::new('--iface', '--iface', [CompletionResultType]::ParameterName, 'Only use this interface; repeat for several, in order of preference. A NAME this machine does not have is warned about and used if it appears; with none of the names here (--iface and --backup), connecting is refused, listing the interfaces there are')
            [CompletionResult]::new('--backup', '--backup', [CompletionResultType]::ParameterName, 'Use this interface only while no other is usable; repeatable')
            [CompletionResult]::new('--iface-kind', '--iface-kind', [CompletionResultType]::ParameterName, 'Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone. Repeat for several interfaces. A NAME this machine does not have is warned about (as with --iface) and applies if it appears')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'End a session that has sent and received no data for this long (e.g. 30s, 2m)')
            [CompletionResult]::new('--resume-timeout', '--resume-timeout', [CompletionResultType]::ParameterName, 'Keep a session whose flowpaths all broke this long, waiting for the network (or the peer) to come back; the client retries meanwhile. Both ends should agree')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'Probe a flowpath with a PING when nothing arrived on it for this long')
            [CompletionResult]::new('--dead-time', '--dead-time', [CompletionResultType]::ParameterName, 'Declare a flowpath dead (and move to a new one) when it owes an answer for this long')
            [CompletionResult]::new('--psk-file', '--psk-file', [CompletionResultType]::ParameterName, 'Also require a pre-shared key, read from FILE (any secret text; both ends need the same file). Sessions then need both the listener''s key and this one')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Give up connecting (TCP connect and msock handshake) after this long. When a session reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least 0.5 s, at most this), while a fresh lookup of the name races it')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Local address to connect from (instead of choosing interfaces by a policy)')
            [CompletionResult]::new('-C', '-C ', [CompletionResultType]::ParameterName, 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s')
            [CompletionResult]::new('--congestion', '--congestion', [CompletionResultType]::ParameterName, 'TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C). Default: the system''s')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Reverse: the listener sends, we receive')
            [CompletionResult]::new('--reverse', '--reverse', [CompletionResultType]::ParameterName, 'Reverse: the listener sends, we receive')
            [CompletionResult]::new('--bidir', '--bidir', [CompletionResultType]::ParameterName, 'Both directions at once (each is reported on its own)')
            [CompletionResult]::new('--get-server-output', '--get-server-output', [CompletionResultType]::ParameterName, 'Also show the listener''s own figures of each test (its intervals and totals, and its CPU time): after the client''s, or under "server_output_json" with --json')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'iperf3''s server flag. msock bench is the client only: this prints where the server is (`msock listen -k PORT`) and exits with status 2')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'iperf3''s server flag. msock bench is the client only: this prints where the server is (`msock listen -k PORT`) and exits with status 2')
            [CompletionResult]::new('--compare-tcp', '--compare-tcp', [CompletionResultType]::ParameterName, 'After the msock test, run the same test over one plain TCP connection to the same listener (which must serve more than one client: `msock listen -k`) and print the goodput ratio')
            [CompletionResult]::new('-J', '-J ', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout at the end, in iperf3 -J''s schema (start.connected, start.test_start, intervals[].streams and .sum, end.streams, end.sum_sent, end.sum_received, end.cpu_utilization_percent, error); what msock adds (flowpaths, re-sent bytes, RTT per flowpath) is under "msock" keys')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout at the end, in iperf3 -J''s schema (start.connected, start.test_start, intervals[].streams and .sum, end.streams, end.sum_sent, end.sum_received, end.cpu_utilization_percent, error); what msock adds (flowpaths, re-sent bytes, RTT per flowpath) is under "msock" keys')
            [CompletionResult]::new('--json-stream', '--json-stream', [CompletionResultType]::ParameterName, 'Print one JSON object per line on stdout as things happen: {"event": "start", "interval", "end" or "error", "data": ...}, as iperf3 --json-stream')
            [CompletionResult]::new('--stripe', '--stripe', [CompletionResultType]::ParameterName, 'Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet)')
            [CompletionResult]::new('--prefer-wifi', '--prefer-wifi', [CompletionResultType]::ParameterName, 'One flowpath, on wifi while there is wifi, else on another interface; moves back when wifi returns (the new flowpath is up before the old one closes)')
            [CompletionResult]::new('--prefer-cellular', '--prefer-cellular', [CompletionResultType]::ParameterName, 'Like --prefer-wifi, for cellular')
            [CompletionResult]::new('-4', '-4', [CompletionResultType]::ParameterName, 'Use IPv4 addresses only')
            [CompletionResult]::new('-6', '-6', [CompletionResultType]::ParameterName, 'Use IPv6 addresses only')
            [CompletionResult]::new('--json-events', '--json-events', [CompletionResultType]::ParameterName, 'Write one JSON object per line on stderr for each session and path event (open, path up/down/moved, resumed, closed), for scripts')
            [CompletionResult]::new('--no-encrypt', '--no-encrypt', [CompletionResultType]::ParameterName, 'Do not encrypt (for measuring or debugging on a network you trust). Both ends must agree: a listener and a client that differ refuse each other instead of falling back. Without encryption the session''s secret comes from values sent in clear, so anyone who saw the session start can also take it over later')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'msock;proxy' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT')
            [CompletionResult]::new('--auth-keys', '--auth-keys', [CompletionResultType]::ParameterName, 'Require a registration key: FILE holds one key per line (at least 16 characters, e.g. from `openssl rand -hex 32`; lines starting with # are comments). Listeners give theirs with --relay-key-file')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Keep names and their secrets in FILE (JSON, mode 0600), so that they survive a restart of the relay. Default: in memory only')
            [CompletionResult]::new('--name-ttl', '--name-ttl', [CompletionResultType]::ParameterName, 'Forget a name (and its secret) when its listener has been gone this long. A name no listener stayed on (its control channel closed before its first keepalive and carried no session) is forgotten after 10 minutes, or this if shorter')
            [CompletionResult]::new('--max-flowpaths', '--max-flowpaths', [CompletionResultType]::ParameterName, 'Most flowpaths carried at once (each session has one or more)')
            [CompletionResult]::new('--max-flowpaths-per-source', '--max-flowpaths-per-source', [CompletionResultType]::ParameterName, 'Most flowpaths carried at once for one client address (running or starting)')
            [CompletionResult]::new('--max-pending-per-name', '--max-pending-per-name', [CompletionResultType]::ParameterName, 'Most flowpaths to one name still starting at once (waiting for the client''s session or for the listener''s answer); one client address may have half of them. A flowpath whose session does not start within --handshake-timeout is closed')
            [CompletionResult]::new('--max-names', '--max-names', [CompletionResultType]::ParameterName, 'Most names registered at once')
            [CompletionResult]::new('--max-names-per-source', '--max-names-per-source', [CompletionResultType]::ParameterName, 'Most names registered from one address (not counted with --auth-keys, where every listener holds an operator key). Registrations from one address are also limited to 1 per second, in bursts of 20')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'New client flowpaths (and lookups) per second from one address, in bursts of up to twice that; 0 for no limit')
            [CompletionResult]::new('--handshake-timeout', '--handshake-timeout', [CompletionResultType]::ParameterName, 'Drop a connection that sends no first frame within this long, a client flowpath whose session does not begin within it (no msock preamble after ROUTE), whose listener does not dial back or answer within it, or that stays half closed and quiet this long')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a spliced flowpath that carried no byte either way for this long (sessions send keepalives every few seconds, so only dead ones are closed)')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'How often listeners send keepalives on their control channel (told to them when they register, in whole seconds: 1s to 1h); a channel silent for three times this is dropped')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Print one JSON object per line on stdout for each event (registered, unregistered, expired, splice, splice_end, refused, dropped) and the summary at exit. Serve Prometheus metrics (OpenMetrics text) on `GET /metrics` at this address: registrations, lookups, spliced flowpaths, bytes each way, refusals by reason, names, listeners connected, open flowpaths, registration and lookup latency histograms. Keep it on a private address: it names no names, but shows the relay''s load')
            [CompletionResult]::new('--rate-per-name', '--rate-per-name', [CompletionResultType]::ParameterName, 'Cap what the flowpaths of one name move, in bytes per second each way (e.g. `10M` = 10 MiB/s; K, M, G are powers of 1024). Shared by all the name''s clients')
            [CompletionResult]::new('--rate-per-source', '--rate-per-source', [CompletionResultType]::ParameterName, 'Cap what the flowpaths of one client address move, in bytes per second each way')
            [CompletionResult]::new('--etcd', '--etcd', [CompletionResultType]::ParameterName, 'Share names with the other relays of a cluster through etcd at these client URLs (http://HOST:PORT, comma-separated; tried in turn): any relay of the cluster then registers any name and reaches any listener. Needs --cluster-key-file. Without etcd (down, no quorum) the relay keeps what it has and refuses new registrations with "registry unavailable"')
            [CompletionResult]::new('--cluster-key-file', '--cluster-key-file', [CompletionResultType]::ParameterName, 'With --etcd: FILE holds the cluster key, the same at every relay of the cluster (at least 32 characters, e.g. from `openssl rand -hex 32`). It seals the names'' secrets in etcd and authenticates the relays to each other')
            [CompletionResult]::new('--relay-id', '--relay-id', [CompletionResultType]::ParameterName, 'With --etcd: this relay''s id in the cluster (letters, digits, ''.'', ''_'', ''-''; default: the advertised address with '':'', ''['' and '']'' as ''_'', e.g. 10.0.0.1_7480). A relay whose id another live relay of the cluster holds refuses to start')
            [CompletionResult]::new('--advertise', '--advertise', [CompletionResultType]::ParameterName, 'With --etcd: the address at which listeners and the other relays reach this relay (default: the --listen address, when it is not a wildcard)')
            [CompletionResult]::new('--etcd-prefix', '--etcd-prefix', [CompletionResultType]::ParameterName, 'With --etcd: prefix of the cluster''s keys in etcd (several clusters can share one etcd); a ''/'' is added when it does not end with one')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'json')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics on stderr (-v: connections and paths, -vv: protocol detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'msock;help' {
            [CompletionResult]::new('listen', 'listen', [CompletionResultType]::ParameterValue, 'Wait for a connection and copy it to stdout, stdin to it (like `nc -l`)')
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`)')
            [CompletionResult]::new('send-file', 'send-file', [CompletionResultType]::ParameterValue, 'Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with progress')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run the built-in loopback benchmark')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST --name NAME`) and clients reach them as NAME@HOST')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'msock;help;listen' {
            break
        }
        'msock;help;connect' {
            break
        }
        'msock;help;send-file' {
            break
        }
        'msock;help;bench' {
            break
        }
        'msock;help;proxy' {
            break
        }
        'msock;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
