//! The committed completion scripts, run in their shells: `--iface <TAB>` offers this
//! machine's interfaces (not file names), `--iface-kind` NAME= then the kinds, `--congestion`
//! the kernel's algorithms, and everything else is still clap's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("completions")
        .join(name)
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("-c")
        .arg("exit 0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `prog args` under `timeout` (so a hung shell fails the test instead of hanging it);
/// returns stdout.
fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run timeout");
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This machine's interfaces, as the scripts should find them.
fn interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The kernel's congestion control algorithms, if it says.
fn algorithms() -> Option<Vec<String>> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").ok()?;
    let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    v.sort();
    Some(v)
}

/// Checks the candidates a shell offered for each command line: `complete(line)` returns them.
fn check(shell: &str, complete: impl Fn(&str) -> Vec<String>) {
    let ifaces = interfaces();
    assert!(
        ifaces.iter().any(|i| i == "lo"),
        "no lo in /sys/class/net: {ifaces:?}"
    );
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    for line in [
        "msock connect --iface ",
        "msock bench --backup ",
        "msock send-file --iface ",
    ] {
        assert_eq!(sorted(complete(line)), ifaces, "{shell}: {line:?}");
    }
    assert_eq!(complete("msock connect --iface l"), ["lo"], "{shell}");
    let with_eq: Vec<String> = ifaces.iter().map(|i| format!("{i}=")).collect();
    let got = sorted(complete("msock connect --iface-kind "));
    // zsh shows the names and adds the = as a suffix of its own.
    assert!(
        got == with_eq || got == ifaces,
        "{shell}: --iface-kind offers {got:?}"
    );
    let got = complete("msock connect --iface-kind lo=c");
    assert!(
        got == ["cellular"] || got == ["lo=cellular"],
        "{shell}: --iface-kind lo=c offers {got:?}"
    );
    if let Some(algos) = algorithms() {
        assert_eq!(
            sorted(complete("msock listen --congestion ")),
            algos,
            "{shell}"
        );
    }
    let got = complete("msock connect --strip");
    assert!(
        got.iter().any(|c| c == "--stripe"),
        "{shell}: clap's own completion lost: {got:?}"
    );
}

#[test]
fn bash_completes_interfaces_kinds_and_algorithms() {
    if !have("bash") {
        println!("SKIPPED: no bash (apt-get install -y bash)");
        return;
    }
    let file = script("msock.bash");
    check("bash", |line| {
        let prog = r#"
            source "$1"
            COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
            read -ra COMP_WORDS <<< "$COMP_LINE"
            [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
            COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            COMPREPLY=()
            f=$(complete -p msock | sed -n 's/.*-F \([^ ]*\).*/\1/p')
            "$f" msock "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        run("bash", &["-c", prog, "bash", file.to_str().unwrap(), line])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    });
}

#[test]
fn fish_completes_interfaces_kinds_and_algorithms() {
    if !have("fish") {
        println!("SKIPPED: no fish (apt-get install -y fish)");
        return;
    }
    let file = script("msock.fish");
    check("fish", |line| {
        let prog = "source $argv[1]; complete -C $argv[2]";
        run("fish", &["-c", prog, file.to_str().unwrap(), line])
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    });
}

#[test]
fn zsh_completes_interfaces_kinds_and_algorithms() {
    if !have("zsh") {
        println!("SKIPPED: no zsh (apt-get install -y zsh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(script("_msock"), dir.path().join("_msock")).unwrap();
    // An interactive zsh on a pseudo-terminal (zpty) with compinit; compadd records what the
    // completion functions offer, then TAB is typed after the line.
    let harness = r#"
        zmodload zsh/zpty
        zpty z zsh -f -i
        zpty -w z "PS1=''; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D; echo ready"
        zpty -r z line '*ready*'
        zpty -w z "compadd() { local -a m; builtin compadd -O m \"\$@\"; print -rl -- \${^m} >> $1/out; }; echo ready2"
        zpty -r z line '*ready2*'
        zpty -w -n z "$2"$'\t'
        for i in {1..50}; do [[ -s $1/out ]] && break; sleep 0.1; done
        sleep 0.3
        zpty -d z
        [[ -f $1/out ]] && cat $1/out
    "#;
    let d = dir.path().to_str().unwrap().to_owned();
    check("zsh", |line| {
        let _ = std::fs::remove_file(dir.path().join("out"));
        let mut got: Vec<String> = run("zsh", &["-f", "-c", harness, "zsh", &d, line])
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect();
        got.dedup();
        got
    });
}
