//! Tests of the frame codec, and the frame strategies other modules' property tests use.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Any error code; `Other` only with codes that have no name (a named code decodes as its
/// name, so `Other(1)` is not a value a decoder can produce).
fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::Protocol),
        Just(ErrorCode::Version),
        Just(ErrorCode::UnknownSession),
        Just(ErrorCode::AuthFailed),
        Just(ErrorCode::Busy),
        Just(ErrorCode::FlowControl),
        Just(ErrorCode::IdleTimeout),
        Just(ErrorCode::Aborted),
        prop_oneof![Just(0u16), 9u16..].prop_map(ErrorCode::Other),
    ]
}

/// DATA payloads: mostly small, sometimes exactly the maximum.
fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..300).prop_map(Bytes::from),
        1 => any::<u8>().prop_map(|b| Bytes::from(vec![b; MAX_DATA_PAYLOAD])),
    ]
}

/// Every frame variant with arbitrary field values. ERROR reasons may exceed
/// [`MAX_REASON`] bytes (multi-byte characters included), which encoding truncates.
pub(crate) fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u32>(),
            any::<[u8; RANDOM_LEN]>(),
            any::<u64>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(client_half, client_random, window, control_port, service, crypto, h)| {
                    Frame::HelloOpen {
                        client_half,
                        client_random,
                        window,
                        control_port,
                        service: Service::from_wire(service),
                        crypto,
                        handshake: Bytes::from(h),
                    }
                }
            ),
        (any::<u64>(), any::<u32>(), any::<[u8; NONCE_LEN]>()).prop_map(
            |(session_id, path_id, client_nonce)| Frame::HelloAttach {
                session_id,
                path_id,
                client_nonce,
            }
        ),
        (
            any::<u64>(),
            any::<[u8; RANDOM_LEN]>(),
            any::<u64>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(session_id, server_random, window, control_port, h)| {
                Frame::Welcome {
                    session_id,
                    server_random,
                    window,
                    control_port,
                    handshake: Bytes::from(h),
                }
            }),
        (
            any::<[u8; NONCE_LEN]>(),
            any::<[u8; PROOF_LEN]>(),
            any::<u64>()
        )
            .prop_map(|(server_nonce, server_proof, cumulative)| {
                Frame::Challenge {
                    server_nonce,
                    server_proof,
                    cumulative,
                }
            }),
        (any::<[u8; PROOF_LEN]>(), any::<u64>()).prop_map(|(client_proof, cumulative)| {
            Frame::AttachProof {
                client_proof,
                cumulative,
            }
        }),
        any::<[u8; NONCE_LEN]>().prop_map(|server_nonce| Frame::Ticket { server_nonce }),
        (
            (any::<u64>(), any::<u32>(), any::<u64>()),
            any::<[u8; NONCE_LEN]>(),
            any::<[u8; NONCE_LEN]>(),
            any::<[u8; PROOF_LEN]>(),
        )
            .prop_map(
                |((session_id, path_id, cumulative), client_nonce, server_nonce, client_proof)| {
                    Frame::HelloResume {
                        session_id,
                        path_id,
                        client_nonce,
                        server_nonce,
                        client_proof,
                        cumulative,
                    }
                }
            ),
        (any::<[u8; PROOF_LEN]>(), any::<u64>()).prop_map(|(server_proof, cumulative)| {
            Frame::Resumed {
                server_proof,
                cumulative,
            }
        }),
        proptest::collection::vec(any::<u8>(), 0..=MAX_HANDSHAKE).prop_map(|h| {
            Frame::HelloFinish {
                handshake: Bytes::from(h),
            }
        }),
        (any::<u64>(), payload()).prop_map(|(offset, payload)| Frame::Data { offset, payload }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(cumulative, limit, path_bytes)| {
            Frame::Ack {
                cumulative,
                limit,
                path_bytes,
            }
        }),
        any::<u64>().prop_map(|token| Frame::Ping { token }),
        any::<u64>().prop_map(|token| Frame::Pong { token }),
        any::<u64>().prop_map(|final_offset| Frame::Fin { final_offset }),
        any::<u64>().prop_map(|final_offset| Frame::FinAck { final_offset }),
        (error_code(), prop_oneof![".{0,40}", ".{250,600}"])
            .prop_map(|(code, reason)| Frame::Error { code, reason }),
    ]
}

/// What decoding `f`'s encoding must give: `f` itself, with an over-long ERROR reason cut
/// at the last whole character within [`MAX_REASON`] bytes.
pub(crate) fn expected_after_encoding(f: &Frame) -> Frame {
    match f {
        Frame::Error { code, reason } => {
            let end = reason
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .take_while(|&e| e <= MAX_REASON)
                .last()
                .unwrap_or(0);
            Frame::Error {
                code: *code,
                reason: reason[..end].to_owned(),
            }
        }
        other => other.clone(),
    }
}

/// A type byte and a body: random ones, or a valid frame's with a few bytes overwritten
/// (sizes stay right, so most of those decode).
fn type_and_body() -> impl Strategy<Value = (u8, Bytes)> {
    let random = (any::<u8>(), vec(any::<u8>(), 0..120)).prop_map(|(t, b)| (t, b.into()));
    let mutated = (arb_frame(), vec((any::<usize>(), any::<u8>()), 0..4)).prop_map(|(f, edits)| {
        let (_, ty, body) = parts(&encode(&f));
        let mut body = body.to_vec();
        let len = body.len();
        for (at, byte) in edits.into_iter().filter(|_| len > 0) {
            body[at % len] = byte;
        }
        (ty, body.into())
    });
    prop_oneof![random, mutated]
}

/// Splits an encoded frame into (length field, type, body).
fn parts(encoded: &[u8]) -> (u32, u8, Bytes) {
    let len = u32::from_be_bytes(encoded[..4].try_into().unwrap());
    (len, encoded[4], Bytes::copy_from_slice(&encoded[5..]))
}

fn encode(f: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    f.encode(&mut out);
    out
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(f in arb_frame()) {
        let out = encode(&f);
        let (len, ty, body) = parts(&out);
        prop_assert_eq!(len as usize, out.len() - 4);
        prop_assert!((1..=MAX_FRAME_LEN).contains(&(len as usize)));
        prop_assert_eq!(Frame::decode(ty, body), Ok(expected_after_encoding(&f)));
    }

    #[test]
    fn encode_appends_without_touching_earlier_bytes(
        prefix in vec(any::<u8>(), 0..50),
        f in arb_frame(),
    ) {
        let mut out = BytesMut::from(&prefix[..]);
        f.encode(&mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &encode(&f)[..]);
    }

    /// Whatever decodes re-encodes to exactly the same bytes: the encoding is canonical,
    /// and decoding arbitrary bodies never panics.
    #[test]
    fn decode_is_total_and_canonical((ty, body) in type_and_body()) {
        if let Ok(f) = Frame::decode(ty, body.clone()) {
            let out = encode(&f);
            prop_assert_eq!(out[4], ty);
            prop_assert_eq!(&out[5..], &body[..]);
        }
    }

    /// Fixed-size bodies: one byte short is truncated, extra bytes are trailing.
    #[test]
    fn wrong_body_sizes_are_rejected(f in arb_frame(), extra in 1usize..10) {
        if matches!(f, Frame::Data { .. } | Frame::Error { .. }) {
            return Ok(());
        }
        let (_, ty, body) = parts(&encode(&f));
        let short = body.slice(..body.len() - 1);
        prop_assert_eq!(Frame::decode(ty, short), Err(DecodeError::Truncated(ty)));
        let mut long = body.to_vec();
        long.extend(std::iter::repeat_n(0xAB, extra));
        prop_assert_eq!(Frame::decode(ty, long.into()), Err(DecodeError::Trailing(ty, extra)));
    }

    #[test]
    fn data_header_matches_full_encoding(offset in any::<u64>(), payload in payload()) {
        let mut out = BytesMut::new();
        Frame::encode_data_header(offset, payload.len(), &mut out);
        out.extend_from_slice(&payload);
        prop_assert_eq!(out, encode(&Frame::Data { offset, payload }));
    }
}

#[test]
fn variable_bodies_have_minimums_and_maximums() {
    for short in 0..8 {
        let r = Frame::decode(ty::DATA, Bytes::from(vec![0; short]));
        assert_eq!(r, Err(DecodeError::Truncated(ty::DATA)));
    }
    assert_eq!(
        Frame::decode(ty::ERROR, Bytes::from_static(&[0])),
        Err(DecodeError::Truncated(ty::ERROR))
    );
    let mut long_reason = vec![0, 1];
    long_reason.extend(vec![b'x'; MAX_REASON + 1]);
    assert_eq!(
        Frame::decode(ty::ERROR, long_reason.into()),
        Err(DecodeError::BadReason)
    );
    let bad_utf8 = Bytes::from_static(&[0, 1, 0xff, 0xfe]);
    assert_eq!(
        Frame::decode(ty::ERROR, bad_utf8),
        Err(DecodeError::BadReason)
    );
    assert_eq!(
        Frame::decode(0x42, Bytes::new()),
        Err(DecodeError::UnknownType(0x42))
    );
}

#[test]
fn unknown_error_codes_are_kept() {
    let body = Bytes::from_static(&[0x12, 0x34, b'h', b'i']);
    let f = Frame::decode(ty::ERROR, body).unwrap();
    assert_eq!(
        f,
        Frame::Error {
            code: ErrorCode::Other(0x1234),
            reason: "hi".into()
        }
    );
}

#[test]
fn largest_data_frame_has_the_largest_length() {
    let f = Frame::Data {
        offset: 1,
        payload: Bytes::from(vec![0; MAX_DATA_PAYLOAD]),
    };
    assert_eq!(parts(&encode(&f)).0 as usize, MAX_FRAME_LEN);
}
