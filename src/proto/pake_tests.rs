//! The pairing exchange between two in-memory ends: agreement, wrong codes on both sides,
//! tampering, and frames that decode only as themselves.

use rand::SeedableRng;

use super::*;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn decode(bytes: &[u8]) -> PakeFrame {
    let h: [u8; 5] = bytes[..5].try_into().unwrap();
    let h = Framing::LenType.parse(&h).unwrap();
    assert_eq!(h.body_len, bytes.len() - 5);
    PakeFrame::decode(h.ty, &bytes[5..]).unwrap()
}

/// Runs the exchange; Ok: what each side got.
fn run(sender: &Code, listener: &Code) -> (Result<Paired, PakeError>, Result<Paired, PakeError>) {
    let (s, start) = Sender::start(sender, &mut rng(1));
    let r = Responder::new(listener, [7; 32]);
    let (reply, awaiting) = r.on_start(decode(&start), &mut rng(2)).unwrap();
    match s.on_reply(decode(&reply)) {
        Ok((confirm, sp)) => {
            let lp = awaiting.on_confirm(decode(&confirm));
            (Ok(sp), lp)
        }
        Err(e) => {
            // The sender says WRONG; the listener hears it.
            let lp = awaiting.on_confirm(decode(&PakeFrame::Wrong.encode()));
            (Err(e), lp)
        }
    }
}

#[test]
fn same_code_gives_both_the_same_psk_name_and_key() {
    let c = Code::parse("7-abacus-able-zircon").unwrap();
    let (s, l) = run(&c, &c);
    let (s, l) = (s.unwrap(), l.unwrap());
    assert_eq!(s, l);
    assert_eq!(s.listener_key, [7; 32]);
    assert!(s.session_name.starts_with('c') && s.session_name.len() == 21);
    // Another run: fresh randomness, another psk and name.
    let (s2, r2) = {
        let (snd, start) = Sender::start(&c, &mut rng(9));
        let (reply, aw) = Responder::new(&c, [7; 32])
            .on_start(decode(&start), &mut rng(10))
            .unwrap();
        let (confirm, p) = snd.on_reply(decode(&reply)).unwrap();
        (p, aw.on_confirm(decode(&confirm)).unwrap())
    };
    assert_eq!(s2, r2);
    assert_ne!(s2.psk, s.psk);
    assert_ne!(s2.session_name, s.session_name);
}

#[test]
fn wrong_code_fails_on_both_sides() {
    let a = Code::parse("7-abacus-able-zircon").unwrap();
    for other in ["7-abacus-able-yoyo", "8-abacus-able-zircon"] {
        let b = Code::parse(other).unwrap();
        let (s, l) = run(&a, &b);
        assert_eq!(s, Err(PakeError::WrongCode));
        assert_eq!(l, Err(PakeError::WrongCode));
    }
}

#[test]
fn a_sender_that_skips_the_check_still_fails_at_the_listener() {
    // A hostile sender that ignores confirm_L and sends a made-up CONFIRM.
    let a = Code::parse("7-abacus-able-zircon").unwrap();
    let (_, start) = Sender::start(&Code::parse("7-abacus-able-yoyo").unwrap(), &mut rng(1));
    let (_, aw) = Responder::new(&a, [7; 32])
        .on_start(decode(&start), &mut rng(2))
        .unwrap();
    let forged = PakeFrame::Confirm([0; 32]).encode();
    assert_eq!(aw.on_confirm(decode(&forged)), Err(PakeError::WrongCode));
}

#[test]
fn tampered_listener_key_fails_the_senders_check() {
    let c = Code::parse("7-abacus-able-zircon").unwrap();
    let (s, start) = Sender::start(&c, &mut rng(1));
    let (reply, _) = Responder::new(&c, [7; 32])
        .on_start(decode(&start), &mut rng(2))
        .unwrap();
    let PakeFrame::Reply { msg, confirm, .. } = decode(&reply) else {
        panic!()
    };
    let swapped = PakeFrame::Reply {
        msg,
        listener_key: [8; 32],
        confirm,
    };
    assert_eq!(s.on_reply(swapped).unwrap_err(), PakeError::WrongCode);
}

#[test]
fn frames_out_of_order_and_other_versions_are_refused() {
    let c = Code::parse("7-abacus-able-zircon").unwrap();
    let r = Responder::new(&c, [7; 32]);
    let v2 = PakeFrame::Start {
        version: 2,
        msg: [0; 33],
    };
    assert!(matches!(
        r.on_start(v2, &mut rng(1)),
        Err(PakeError::Protocol(_))
    ));
    assert!(matches!(
        r.on_start(PakeFrame::Done, &mut rng(1)),
        Err(PakeError::Protocol(_))
    ));
    let (s, _) = Sender::start(&c, &mut rng(1));
    let refusal = PakeFrame::Error(ErrorCode::Refused, "burned".into());
    assert!(matches!(s.on_reply(refusal), Err(PakeError::Refused(..))));
    assert_eq!(on_done(PakeFrame::Wrong), Err(PakeError::WrongCode));
    // Bodies of the wrong length, unknown types.
    assert!(PakeFrame::decode(kind::CONFIRM, &[0; 31]).is_err());
    assert!(PakeFrame::decode(kind::DONE, &[0]).is_err());
    assert!(PakeFrame::decode(0x45, &[]).is_err());
    for f in [
        PakeFrame::Done,
        PakeFrame::Wrong,
        PakeFrame::Confirm([3; 32]),
        PakeFrame::Error(ErrorCode::Refused, "x".into()),
    ] {
        assert_eq!(decode(&f.encode()), f);
    }
}
