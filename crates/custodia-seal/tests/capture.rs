//! Sealed-capture behaviour: round trips, tamper detection, wrong keys, bounds.

use custodia_seal::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Fixture {
    device: DeviceSigningKey,
    keys: Vec<EpochSecretKey>,
    pks: Vec<EpochPublicKey>,
    header: CaptureHeader,
}

fn fixture(seed: u64) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let device = DeviceSigningKey::generate(&mut rng);
    let keys: Vec<_> = (0..3).map(|_| EpochSecretKey::generate(&mut rng)).collect();
    let pks = keys.iter().map(|k| k.public_key()).collect();
    let header = CaptureHeader {
        device_id: DeviceId([0x11; 16]),
        site: SiteName::new("anzalduas").unwrap(),
        lane: LaneName::new("lane-07").unwrap(),
        capture_time_ms: 1_700_000_000_123,
        sequence: 99,
    };
    Fixture { device, keys, pks, header }
}

/// A small capture: two groups, three parts, one metadata part.
fn small(f: &Fixture, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let groups = vec![
        GroupToSeal {
            class: RetentionClass::Plate,
            epoch_id: EpochId([1; 16]),
            epoch_key: &f.pks[0],
            parts: vec![
                PartToSeal { kind: PartKind::Metadata, plaintext: b"{\"plate\":\"ABC123\"}" },
                PartToSeal { kind: PartKind::Jpeg, plaintext: b"jpeg bytes" },
            ],
        },
        GroupToSeal {
            class: RetentionClass::Face,
            epoch_id: EpochId([2; 16]),
            epoch_key: &f.pks[1],
            parts: vec![PartToSeal { kind: PartKind::Png, plaintext: b"" }],
        },
    ];
    seal(&f.header, &groups, &f.device, rng).unwrap()
}

#[test]
fn round_trip_small() {
    let f = fixture(1);
    let mut rng = ChaCha20Rng::seed_from_u64(100);
    let bytes = small(&f, &mut rng);
    let c = SealedCapture::parse(&bytes).unwrap();
    assert_eq!(c.header(), &f.header);
    c.verify_signature(&f.device.verifying_key()).unwrap();
    assert_eq!(c.metadata_part(), Some((0, 0)));
    assert_eq!(c.groups().len(), 2);
    assert_eq!(c.groups()[0].class(), RetentionClass::Plate);
    assert_eq!(c.groups()[1].epoch_id(), EpochId([2; 16]));
    assert_eq!(c.groups()[1].parts()[0].kind(), PartKind::Png);
    assert_eq!(c.groups()[1].parts()[0].plaintext_len(), 0);
    assert_eq!(c.encode_header(), c.header_bytes());
    let k0 = c.open_data_key(0, &f.keys[0]).unwrap();
    assert_eq!(&c.open_part(0, 0, &k0).unwrap()[..], b"{\"plate\":\"ABC123\"}");
    assert_eq!(&c.open_part(0, 1, &k0).unwrap()[..], b"jpeg bytes");
    let k1 = c.open_data_key(1, &f.keys[1]).unwrap();
    assert_eq!(&c.open_part(1, 0, &k1).unwrap()[..], b"");
    // A key opens only its own group's parts.
    assert_eq!(c.open_part(1, 0, &k0).unwrap_err(), OpenError::DecryptionFailed);
    assert_eq!(c.open_part(2, 0, &k0).unwrap_err(), OpenError::NoSuchPart);
    assert_eq!(c.open_part(0, 2, &k0).unwrap_err(), OpenError::NoSuchPart);
    // Digest covers everything.
    let d = c.content_digest();
    assert_ne!(d, c.header_hash());
}

#[test]
fn sealing_is_randomised() {
    let f = fixture(2);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = small(&f, &mut rng);
    let b = small(&f, &mut rng);
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);
}

#[test]
fn every_single_byte_corruption_is_refused() {
    let f = fixture(3);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let bytes = small(&f, &mut rng);
    let vk = f.device.verifying_key();
    for i in 0..bytes.len() {
        for x in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut m = bytes.clone();
            m[i] ^= x;
            let refused = match SealedCapture::parse(&m) {
                Err(_) => true,
                Ok(c) => c.verify_signature(&vk).is_err(),
            };
            assert!(refused, "corruption at byte {i} with xor {x:#04x} was accepted");
        }
    }
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let f = fixture(4);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let bytes = small(&f, &mut rng);
    for n in 0..bytes.len() {
        assert!(SealedCapture::parse(&bytes[..n]).is_err(), "prefix of {n} bytes parsed");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(SealedCapture::parse(&longer).unwrap_err(), ParseError::TrailingBytes);
}

#[test]
fn wrong_device_key_is_refused() {
    let f = fixture(5);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let bytes = small(&f, &mut rng);
    let other = DeviceSigningKey::generate(&mut rng).verifying_key();
    let c = SealedCapture::parse(&bytes).unwrap();
    assert_eq!(c.verify_signature(&other).unwrap_err(), VerifyError::BadSignature);
}

#[test]
fn wrong_epoch_key_gives_open_error() {
    let f = fixture(6);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let bytes = small(&f, &mut rng);
    let c = SealedCapture::parse(&bytes).unwrap();
    assert_eq!(c.open_data_key(0, &f.keys[1]).unwrap_err(), OpenError::DecryptionFailed);
    assert_eq!(c.open_data_key(1, &f.keys[2]).unwrap_err(), OpenError::DecryptionFailed);
    assert_eq!(c.open_data_key(4, &f.keys[0]).unwrap_err(), OpenError::NoSuchPart);
}

/// A decapsulator that reports the right public key but computes DH with another scalar, and
/// one whose backend fails: the first is an opaque crypto failure, the second a keystore error.
#[test]
fn decapsulator_trait_failures() {
    struct Lying<'a>(&'a EpochSecretKey, &'a EpochSecretKey);
    impl Decapsulator for Lying<'_> {
        fn public_key(&self) -> EpochPublicKey {
            self.0.public_key()
        }
        fn diffie_hellman(&self, peer: &EpochPublicKey) -> Result<SharedSecretX, DecapError> {
            self.1.diffie_hellman(peer)
        }
    }
    struct Down;
    impl Decapsulator for Down {
        fn public_key(&self) -> EpochPublicKey {
            unreachable!("not asked before DH fails")
        }
        fn diffie_hellman(&self, _: &EpochPublicKey) -> Result<SharedSecretX, DecapError> {
            Err(DecapError::KeyUnavailable)
        }
    }
    let f = fixture(7);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let bytes = small(&f, &mut rng);
    let c = SealedCapture::parse(&bytes).unwrap();
    assert_eq!(c.open_data_key(0, &Lying(&f.keys[0], &f.keys[1])).unwrap_err(), OpenError::DecryptionFailed);
    assert_eq!(c.open_data_key(0, &Down).unwrap_err(), OpenError::Keystore(DecapError::KeyUnavailable));
}

#[test]
fn rewrap_to_another_epoch() {
    let f = fixture(8);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let bytes = small(&f, &mut rng);
    let c = SealedCapture::parse(&bytes).unwrap();
    let binding = data_key_binding(&f.header.device_id, f.header.sequence, 0);
    // The group's own wrapped key opens through the public unwrap API with the binding.
    let k = unwrap_data_key(c.groups()[0].wrapped_data_key(), &f.keys[0], &binding).unwrap();
    assert_eq!(k, c.open_data_key(0, &f.keys[0]).unwrap());
    // Re-wrap to a longer-lived epoch key, serialise, reparse, unwrap, open a part.
    let w = wrap_data_key(&k, &f.pks[2], &binding, &mut rng);
    let w2 = WrappedDataKey::from_bytes(&w.to_bytes()).unwrap();
    assert_eq!(w, w2);
    let k2 = unwrap_data_key(&w2, &f.keys[2], &binding).unwrap();
    assert_eq!(&c.open_part(0, 1, &k2).unwrap()[..], b"jpeg bytes");
    // Wrong binding, wrong key, altered bytes: one opaque error.
    let other = data_key_binding(&f.header.device_id, f.header.sequence, 1);
    assert_eq!(unwrap_data_key(&w2, &f.keys[2], &other).unwrap_err(), OpenError::DecryptionFailed);
    assert_eq!(unwrap_data_key(&w2, &f.keys[0], &binding).unwrap_err(), OpenError::DecryptionFailed);
    for i in 2..WrappedDataKey::ENCODED_LEN {
        let mut b = w.to_bytes();
        b[i] ^= 0x01;
        if let Ok(bad) = WrappedDataKey::from_bytes(&b) {
            assert!(unwrap_data_key(&bad, &f.keys[2], &binding).is_err(), "byte {i}");
        }
    }
    assert!(WrappedDataKey::from_bytes(&w.to_bytes()[..114]).is_err());
    // Debug never shows the key.
    assert_eq!(format!("{k:?}"), "DataKey(<redacted>)");
}

#[test]
fn seal_refuses_bad_shapes() {
    let f = fixture(9);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let part = PartToSeal { kind: PartKind::Jpeg, plaintext: b"x" };
    let meta = PartToSeal { kind: PartKind::Metadata, plaintext: b"m" };
    let g = |class, parts: Vec<PartToSeal<'static>>| GroupToSeal {
        class,
        epoch_id: EpochId([0; 16]),
        epoch_key: &f.pks[0],
        parts,
    };
    let s = |groups: &[GroupToSeal<'_>]| seal(&f.header, groups, &f.device, &mut ChaCha20Rng::seed_from_u64(0));
    assert_eq!(s(&[]).unwrap_err(), SealError::GroupCount(0));
    let five: Vec<_> = (0..5).map(|_| g(RetentionClass::Face, vec![part])).collect();
    assert_eq!(s(&five).unwrap_err(), SealError::GroupCount(5));
    assert_eq!(s(&[g(RetentionClass::Face, vec![])]).unwrap_err(), SealError::PartCount { group: 0, count: 0 });
    assert_eq!(s(&[g(RetentionClass::Face, vec![part; 9])]).unwrap_err(), SealError::PartCount { group: 0, count: 9 });
    assert!(s(&[g(RetentionClass::Face, vec![part; 8])]).is_ok());
    assert_eq!(
        s(&[g(RetentionClass::Face, vec![part]), g(RetentionClass::Face, vec![part])]).unwrap_err(),
        SealError::DuplicateClass(RetentionClass::Face)
    );
    assert_eq!(
        s(&[g(RetentionClass::Face, vec![meta]), g(RetentionClass::Plate, vec![meta])]).unwrap_err(),
        SealError::TooManyMetadataParts
    );
    assert!(s(&[g(RetentionClass::Face, vec![part]), g(RetentionClass::Plate, vec![meta])]).is_ok());
    let big = vec![0u8; MAX_PART_PLAINTEXT_BYTES + 1];
    let gb = GroupToSeal {
        class: RetentionClass::Face,
        epoch_id: EpochId([0; 16]),
        epoch_key: &f.pks[0],
        parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: &big }],
    };
    assert_eq!(s(&[gb]).unwrap_err(), SealError::PartTooLarge { group: 0, part: 0 });
    let max = vec![0u8; MAX_PART_PLAINTEXT_BYTES];
    let gm = GroupToSeal {
        class: RetentionClass::Face,
        epoch_id: EpochId([0; 16]),
        epoch_key: &f.pks[0],
        parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: &max }; 4],
    };
    assert_eq!(s(&[gm]).unwrap_err(), SealError::CaptureTooLarge);
    let _ = &mut rng;
}

// ---- bounds on hand-made headers ----

/// Builds a header by hand: one Face group per entry of `parts_per_group` (classes are
/// assigned 1, 2, 3, 1, ...), each part a Jpeg of ciphertext length `part_len`.
fn raw_header(group_count: u8, parts_per_group: u8, part_len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"CSTDSEAL");
    h.push(1);
    h.extend_from_slice(&1u16.to_be_bytes());
    h.extend_from_slice(&[0x11; 16]);
    h.push(1);
    h.push(b's');
    h.push(1);
    h.push(b'l');
    h.extend_from_slice(&0i64.to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes());
    h.push(group_count);
    for gi in 0..group_count {
        h.push(gi % 3 + 1);
        h.extend_from_slice(&[0; 16]);
        h.push(4);
        h.extend_from_slice(&[0; 64]);
        h.extend_from_slice(&[0; 48]);
        h.push(parts_per_group);
        for _ in 0..parts_per_group {
            h.push(1);
            h.extend_from_slice(&part_len.to_be_bytes());
        }
    }
    h
}

#[test]
fn hand_made_header_parses_and_is_canonical() {
    let mut b = raw_header(1, 1, 16);
    b.extend_from_slice(&[0; 16 + 64]);
    let c = SealedCapture::parse(&b).unwrap();
    assert_eq!(c.encode_header(), c.header_bytes());
    assert_eq!(c.metadata_part(), None);
}

#[test]
fn bounds_are_refused_before_allocation() {
    // Group count 5: refused at the count byte, before any group is read.
    let mut b = raw_header(5, 1, 16);
    b.extend_from_slice(&[0; 5 * 16 + 64]);
    assert_eq!(SealedCapture::parse(&b).unwrap_err(), ParseError::GroupCount(5));
    let mut b = raw_header(0, 1, 16);
    b.extend_from_slice(&[0; 64]);
    assert_eq!(SealedCapture::parse(&b).unwrap_err(), ParseError::GroupCount(0));
    // Group count 255 with nothing after it.
    assert_eq!(SealedCapture::parse(&raw_header(255, 0, 0)).unwrap_err(), ParseError::GroupCount(255));
    // Part count 9 and 0.
    let mut b = raw_header(1, 9, 16);
    b.extend_from_slice(&[0; 9 * 16 + 64]);
    assert_eq!(SealedCapture::parse(&b).unwrap_err(), ParseError::PartCount(9));
    assert_eq!(SealedCapture::parse(&raw_header(1, 0, 16)).unwrap_err(), ParseError::PartCount(0));
    // Oversized and undersized part lengths: refused from the header alone, with no body present.
    for len in [u32::MAX, (MAX_PART_BYTES + 1) as u32, 15, 0] {
        assert_eq!(SealedCapture::parse(&raw_header(1, 1, len)).unwrap_err(), ParseError::PartLength(len));
    }
    // A legal part length whose body is missing is truncation, not an allocation.
    assert_eq!(SealedCapture::parse(&raw_header(1, 1, MAX_PART_BYTES as u32)).unwrap_err(), ParseError::Truncated);
    // Duplicate class.
    let mut b = raw_header(4, 1, 16); // classes 1, 2, 3, 1
    b.extend_from_slice(&[0; 4 * 16 + 64]);
    assert_eq!(SealedCapture::parse(&b).unwrap_err(), ParseError::DuplicateClass);
    // Input over the capture limit is refused before reading it.
    let huge = vec![0u8; MAX_CAPTURE_BYTES + 1];
    assert_eq!(SealedCapture::parse(&huge).unwrap_err(), ParseError::TooLarge);
}

#[test]
fn header_field_errors() {
    let mut base = raw_header(1, 1, 16);
    base.extend_from_slice(&[0; 16 + 64]);
    let with = |i: usize, v: u8| {
        let mut b = base.clone();
        b[i] = v;
        SealedCapture::parse(&b).unwrap_err()
    };
    assert_eq!(with(0, b'X'), ParseError::BadMagic);
    assert_eq!(with(8, 2), ParseError::UnsupportedVersion(2));
    assert_eq!(with(10, 2), ParseError::UnsupportedSuite(2));
    assert_eq!(with(28, b' '), ParseError::BadName); // site byte
    assert_eq!(with(27, 0), ParseError::BadName); // site length 0
    let group = 27 + 2 + 2 + 8 + 8 + 1;
    assert_eq!(with(group, 0), ParseError::UnknownClass(0));
    assert_eq!(with(group, 4), ParseError::UnknownClass(4));
    assert_eq!(with(group + 17, 2), ParseError::BadEncapsulatedKey);
    assert_eq!(with(group + 1 + 16 + 65 + 48 + 1, 3), ParseError::UnknownPartKind(3));
}

// ---- property tests ----

fn part_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (1u8..=2, proptest::collection::vec(any::<u8>(), 0..300))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn seal_parse_verify_open_round_trip(
        seed in any::<u64>(),
        classes in proptest::sample::subsequence(vec![1u8, 2, 3], 1..=3),
        parts in proptest::collection::vec(proptest::collection::vec(part_strategy(), 1..=MAX_PARTS_PER_GROUP), 3),
        meta_at in proptest::option::of((0usize..3, 0usize..8)),
        time in any::<i64>(),
        sequence in any::<u64>(),
        site in "[A-Za-z0-9._-]{1,64}",
        lane in "[A-Za-z0-9._-]{1,64}",
    ) {
        let f = fixture(seed);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let header = CaptureHeader {
            device_id: DeviceId::random(&mut rng),
            site: SiteName::new(site).unwrap(),
            lane: LaneName::new(lane).unwrap(),
            capture_time_ms: time,
            sequence,
        };
        let mut groups = Vec::new();
        for (gi, &c) in classes.iter().enumerate() {
            let parts: Vec<PartToSeal<'_>> = parts[gi].iter().enumerate().map(|(pi, (k, pt))| {
                let kind = if meta_at == Some((gi, pi)) { PartKind::Metadata } else { PartKind::from_u8(*k).unwrap() };
                PartToSeal { kind, plaintext: pt }
            }).collect();
            groups.push(GroupToSeal {
                class: RetentionClass::from_u8(c).unwrap(),
                epoch_id: EpochId([c; 16]),
                epoch_key: &f.pks[gi],
                parts,
            });
        }
        let bytes = seal(&header, &groups, &f.device, &mut rng).unwrap();
        let c = SealedCapture::parse(&bytes).unwrap();
        prop_assert_eq!(c.header(), &header);
        prop_assert_eq!(c.encode_header(), c.header_bytes().to_vec());
        c.verify_signature(&f.device.verifying_key()).unwrap();
        let expected_meta = meta_at.filter(|&(g, p)| g < groups.len() && p < groups[g].parts.len());
        prop_assert_eq!(c.metadata_part(), expected_meta);
        prop_assert_eq!(c.groups().len(), groups.len());
        for (gi, g) in groups.iter().enumerate() {
            let sg = &c.groups()[gi];
            prop_assert_eq!(sg.class(), g.class);
            prop_assert_eq!(sg.epoch_id(), g.epoch_id);
            let k = c.open_data_key(gi, &f.keys[gi]).unwrap();
            for (pi, p) in g.parts.iter().enumerate() {
                prop_assert_eq!(sg.parts()[pi].kind(), p.kind);
                prop_assert_eq!(&c.open_part(gi, pi, &k).unwrap()[..], p.plaintext);
            }
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(c) = SealedCapture::parse(&bytes) {
            prop_assert_eq!(c.encode_header(), c.header_bytes().to_vec());
        }
    }
}

#[test]
fn one_pass_verification_agrees_with_the_two_separate_checks() {
    let f = fixture(12);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let bytes = small(&f, &mut rng);
    let c = SealedCapture::parse(&bytes).unwrap();
    let digest = c.verify_signature_with_digest(&f.device.verifying_key()).unwrap();
    assert_eq!(digest, c.content_digest());
    let other = DeviceSigningKey::generate(&mut rng).verifying_key();
    assert_eq!(c.verify_signature_with_digest(&other).unwrap_err(), VerifyError::BadSignature);
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    let c = SealedCapture::parse(&flipped).unwrap();
    assert!(c.verify_signature_with_digest(&f.device.verifying_key()).is_err());
}
