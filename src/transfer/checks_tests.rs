//! Tests of the receiver's offer and proof checks.

use super::*;
use crate::transfer::wire::Entry;

fn rules(dir: &Path) -> SaveRules {
    SaveRules {
        dir: dir.to_path_buf(),
        overwrite: false,
        max_size: None,
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn offer(entries: &[(&str, Kind, u64)]) -> Offer {
    Offer {
        entries: entries
            .iter()
            .map(|&(p, kind, size)| Entry {
                path: p.into(),
                kind,
                size,
                exec: false,
                token: Some(TOKEN.into()),
            })
            .collect(),
        more: false,
    }
}

/// The partial name of `name` for [`TOKEN`].
fn part(name: &str) -> String {
    part_name(name, &owner_tag(&parse_hex32(TOKEN).unwrap()))
}

#[test]
fn hostile_offers_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut bad_token = offer(&[("a", Kind::File, 1)]);
    bad_token.entries[0].token = Some("xyz".into());
    for bad in [
        offer(&[("../escape", Kind::File, 1)]),
        offer(&[("/etc/x", Kind::File, 1)]),
        offer(&[("a", Kind::File, 1), ("a", Kind::File, 1)]),
        offer(&[("a/b", Kind::File, 1), ("a", Kind::File, 1)]),
        offer(&[("a", Kind::File, 1), ("a/b", Kind::File, 1)]),
        offer(&[("x\u{202E}y", Kind::File, 1)]),
        bad_token,
    ] {
        assert!(check_offer(&bad, &rules(d.path())).is_err(), "{bad:?}");
    }
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn symlinks_on_the_receiver_are_never_followed() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("f"), d.path().join("f")).unwrap();
    for bad in [
        offer(&[("link/x", Kind::File, 1)]),
        offer(&[("link", Kind::Dir, 0)]),
        offer(&[("f", Kind::File, 1)]),
    ] {
        let e = check_offer(&bad, &rules(d.path())).err().expect("refused");
        assert!(e.contains("symlink"), "{e}");
    }
}

#[test]
fn limits_and_paths_too_long_for_the_file_system() {
    let d = tempfile::tempdir().unwrap();
    let mut r = rules(d.path());
    r.max_size = Some(100);
    let e = check_offer(&offer(&[("a", Kind::File, 101)]), &r)
        .err()
        .unwrap();
    assert!(e.contains("--max-size"), "{e}");
    let (_, needs) = check_offer(&offer(&[("a", Kind::File, 100)]), &r).unwrap();
    assert_eq!(needs, vec![(d.path().join(part("a")), 100)]);
    // 20 components of 203 bytes: within names::check's 4096 bytes, beyond PATH_MAX here.
    let long = vec!["n".repeat(203); 20].join("/");
    let e = check_offer(&offer(&[(&long, Kind::File, 1)]), &rules(d.path()))
        .err()
        .unwrap();
    assert!(e.contains("too long"), "{e}");
}

#[test]
fn only_the_senders_own_partial_file_is_reported_and_nothing_is_hashed() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join(part("a")), b"hello").unwrap();
    // Another sender's partial file and the old fixed name: not ours.
    fs::write(d.path().join(".c.msock-part"), b"other").unwrap();
    fs::write(d.path().join("b"), b"world").unwrap();
    let o = offer(&[
        ("a", Kind::File, 10),
        ("b", Kind::File, 5),
        ("c", Kind::File, 3),
    ]);
    let (mut entries, needs) = check_offer(&o, &rules(d.path())).unwrap();
    let needed: u64 = needs.iter().map(|n| n.1).sum();
    assert_eq!(needed, 5 + 3);
    assert_eq!(entries[0].held(0).unwrap().partial, 5);
    assert!(entries[1].held(1).unwrap().existing);
    assert_eq!(entries[2].held(2), None);

    let proofs = [
        Proof {
            index: 0,
            prefix: Some(blake3::hash(b"hello").to_hex().to_string()),
            whole: None,
        },
        Proof {
            index: 1,
            prefix: None,
            whole: Some(blake3::hash(b"world").to_hex().to_string()),
        },
    ];
    let (checks, hashers) = check_proofs(&proofs, &mut entries).unwrap();
    assert!(checks[0].resume && checks[1].same);
    assert_eq!(entries[0].resume, 5);
    assert_eq!(
        hashers[&0].finalize(),
        blake3::hash(b"hello"),
        "the hash state is carried on"
    );
    // Wrong proofs are told no, and a proof for an unlisted entry is the sender's fault.
    let (mut entries, _) = check_offer(&o, &rules(d.path())).unwrap();
    let wrong = [Proof {
        index: 0,
        prefix: Some(blake3::hash(b"HELLO").to_hex().to_string()),
        whole: None,
    }];
    let (checks, _) = check_proofs(&wrong, &mut entries).unwrap();
    assert!(!checks[0].resume);
    let unlisted = [Proof {
        index: 2,
        prefix: None,
        whole: None,
    }];
    assert!(matches!(
        check_proofs(&unlisted, &mut entries),
        Err(ProofError::Peer(_))
    ));
}

#[test]
fn a_hard_link_at_the_partial_name_is_refused_unread() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, b"secret").unwrap();
    fs::hard_link(&secret, d.path().join(part("h"))).unwrap();
    let e = check_offer(&offer(&[("h", Kind::File, 6)]), &rules(d.path()))
        .err()
        .expect("refused");
    assert!(e.contains("never opens it"), "{e}");
    assert!(matches!(
        open_own(&d.path().join(part("h")), true),
        Err(WriteError::NotOurs(_))
    ));
    assert_eq!(fs::read(&secret).unwrap(), b"secret");
}
