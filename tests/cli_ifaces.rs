//! End-to-end tests of interface discovery: `msock connect --list-ifaces` and
//! `--iface-kind NAME=KIND`, and the usage errors around them.

mod common;

use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;

const SHORT: Duration = Duration::from_secs(15);

/// `msock ARGS` as an assert_cmd command, with stdin closed and a deadline.
fn msock(args: &[&str]) -> Command {
    let mut c = Command::from_std(common::msock(args));
    c.write_stdin("").timeout(SHORT);
    c
}

/// The loopback interface's row of a `--list-ifaces` table, split into fields.
fn loopback_row(table: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.first().is_some_and(|n| n == "lo" || n == "lo0"))
        .unwrap_or_else(|| panic!("no loopback row in:\n{table}"))
}

#[test]
fn list_ifaces_shows_loopback_and_exits_0() {
    let out = msock(&["connect", "--list-ifaces"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("INTERFACE"))
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["INTERFACE", "KIND", "HOW", "STATE", "ADDRESSES"]);
    let row = loopback_row(&table);
    assert_eq!(row[1], "loopback", "{table}");
    assert_ne!(row[2], "user", "{table}");
    assert!(row[4..].iter().any(|a| a == "127.0.0.1"), "{table}");
}

/// stdout of `msock ARGS`, which must succeed.
fn list(args: &[&str]) -> String {
    let out = msock(args).assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn iface_kind_overrides_the_listed_kind() {
    let lo = loopback_row(&list(&["connect", "--list-ifaces"]))[0].clone();
    let table = list(&[
        "connect",
        "--list-ifaces",
        "--iface-kind",
        &format!("{lo}=wifi"),
    ]);
    assert_eq!(loopback_row(&table)[1..3], ["wifi", "user"], "{table}");
    // The last override of a name wins, and KIND is case-insensitive.
    let table = list(&[
        "connect",
        "--iface-kind",
        &format!("{lo}=wifi"),
        &format!("--iface-kind={lo}=Cellular"),
        "--list-ifaces",
    ]);
    assert_eq!(loopback_row(&table)[1..3], ["cellular", "user"], "{table}");
}

#[test]
fn iface_kind_for_a_missing_interface_warns() {
    msock(&[
        "connect",
        "--list-ifaces",
        "--iface-kind",
        "nosuchif9=cellular",
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains("nosuchif9"));
}

#[test]
fn bad_iface_kinds_exit_2_naming_the_kinds() {
    for bad in ["lo=banana", "nonsense", "=wifi", "lo=loopback"] {
        let out = msock(&["connect", "--list-ifaces", "--iface-kind", bad])
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .get_output()
            .stderr
            .clone();
        let stderr = String::from_utf8_lossy(&out);
        assert!(
            stderr.contains("e.g.") || stderr.contains("wifi, cellular"),
            "{bad}: {stderr}"
        );
    }
    for bad in ["lo=banana", "nonsense"] {
        msock(&["connect", "--list-ifaces", "--iface-kind", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "wifi, cellular, ethernet, tunnel or other",
            ));
    }
}

#[test]
fn connect_needs_host_port_or_list_ifaces() {
    msock(&["connect"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("HOST:PORT"));
    msock(&["connect", "--iface-kind", "lo=wifi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("HOST:PORT"));
    // Listing never connects, so a destination with it is a mistake, not silently ignored.
    msock(&["connect", "--list-ifaces", "127.0.0.1:9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--list-ifaces"));
}

#[test]
fn iface_kind_does_not_get_in_the_way_of_connecting() {
    // Kinds steer the interface policies; with none of them the routing table decides, and a
    // dead port is still just a refused connection.
    let addr = common::dead_port().to_string();
    msock(&["connect", "--iface-kind", "lo=wifi", &addr])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(addr.as_str()));
}

#[test]
fn a_missing_iface_is_named_with_what_the_machine_has() {
    let addr = common::dead_port().to_string();
    // The user's flag names an interface this machine lacks: exit 2 (issue 13 item 12).
    msock(&["connect", "--iface", "nosuchif7", &addr])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "there is no interface nosuchif7 here",
        ))
        .stderr(
            predicate::str::contains("this machine has: ")
                .and(predicate::str::contains("lo (").or(predicate::str::contains("lo0 ("))),
        );
}

#[test]
fn iface_kind_for_a_missing_interface_warns_when_connecting() {
    let addr = common::dead_port().to_string();
    msock(&["connect", "--iface-kind", "nosuchif8=cellular", &addr])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--iface-kind nosuchif8=...: there is no interface nosuchif8 now",
        ));
}

/// `--iface` and `--backup` treat a missing interface as `--iface-kind` does: a warning that
/// names it (it is used if it appears), as long as another named interface is here; refused
/// only when none is (above).
#[test]
fn a_missing_iface_beside_a_present_one_warns() {
    let addr = common::dead_port().to_string();
    for flag in ["--iface", "--backup"] {
        msock(&["connect", "--iface", "lo", flag, "nosuchif9", &addr])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "{flag} nosuchif9: there is no interface nosuchif9 now"
            )));
    }
}
