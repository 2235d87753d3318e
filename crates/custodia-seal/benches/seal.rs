//! Sealing and verifying a typical 250 KB capture: a 1 KB metadata part and a 20 KB face crop
//! (face group), a 200 KB overview (overview group), a 30 KB plate crop (plate group).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custodia_seal::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let device = DeviceSigningKey::generate(&mut rng);
    let vk = device.verifying_key();
    let face = EpochSecretKey::generate(&mut rng);
    let plate = EpochSecretKey::generate(&mut rng);
    let overview = EpochSecretKey::generate(&mut rng);
    let (face_pk, plate_pk, overview_pk) = (face.public_key(), plate.public_key(), overview.public_key());
    let mut data = |n: usize| {
        let mut v = vec![0u8; n];
        rng.fill_bytes(&mut v);
        v
    };
    let (meta, face_jpg, overview_jpg, plate_jpg) = (data(1_000), data(20_000), data(200_000), data(30_000));
    let header = CaptureHeader {
        device_id: DeviceId([1; 16]),
        site: SiteName::new("anzalduas").unwrap(),
        lane: LaneName::new("lane-07").unwrap(),
        capture_time_ms: 1_700_000_000_000,
        sequence: 1,
    };
    let groups = vec![
        GroupToSeal {
            class: RetentionClass::Face,
            epoch_id: EpochId([1; 16]),
            epoch_key: &face_pk,
            parts: vec![
                PartToSeal { kind: PartKind::Metadata, plaintext: &meta },
                PartToSeal { kind: PartKind::Jpeg, plaintext: &face_jpg },
            ],
        },
        GroupToSeal {
            class: RetentionClass::Overview,
            epoch_id: EpochId([2; 16]),
            epoch_key: &overview_pk,
            parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: &overview_jpg }],
        },
        GroupToSeal {
            class: RetentionClass::Plate,
            epoch_id: EpochId([3; 16]),
            epoch_key: &plate_pk,
            parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: &plate_jpg }],
        },
    ];
    let total = (meta.len() + face_jpg.len() + overview_jpg.len() + plate_jpg.len()) as u64;
    let sealed = seal(&header, &groups, &device, &mut rng).unwrap();

    let mut g = c.benchmark_group("capture_251kB");
    g.throughput(Throughput::Bytes(total));
    g.bench_function("seal", |b| b.iter(|| seal(black_box(&header), black_box(&groups), &device, &mut rng).unwrap()));
    g.bench_function("parse_and_verify", |b| {
        b.iter(|| {
            let c = SealedCapture::parse(black_box(&sealed)).unwrap();
            c.verify_signature(&vk).unwrap();
        })
    });
    g.bench_function("ingest_parse_verify_open_metadata", |b| {
        b.iter(|| {
            let c = SealedCapture::parse(black_box(&sealed)).unwrap();
            c.verify_signature(&vk).unwrap();
            let (gi, pi) = c.metadata_part().unwrap();
            let k = c.open_data_key(gi, &face).unwrap();
            c.open_part(gi, pi, &k).unwrap()
        })
    });
    g.bench_function("open_all_parts", |b| {
        let c = SealedCapture::parse(&sealed).unwrap();
        let keys = [&face, &overview, &plate];
        b.iter(|| {
            for (gi, grp) in c.groups().iter().enumerate() {
                let k = c.open_data_key(gi, keys[gi]).unwrap();
                for pi in 0..grp.parts().len() {
                    black_box(c.open_part(gi, pi, &k).unwrap());
                }
            }
        })
    });
    // Peers measured in the same run: the raw primitives over the same bytes. Seal costs about
    // one AES-GCM pass + one SHA-256 pass + 3 ECDH + 1 Ed25519 sign; verify one SHA-256 pass.
    let body = data_concat(&[&meta, &face_jpg, &overview_jpg, &plate_jpg]);
    g.bench_function("peer_aes256gcm_only", |b| {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
        let mut buf = body.clone();
        b.iter(|| cipher.encrypt_in_place_detached(&[0u8; 12].into(), b"", &mut buf).unwrap())
    });
    g.bench_function("peer_sha256_only", |b| {
        use sha2::Digest;
        b.iter(|| sha2::Sha256::digest(black_box(&body)))
    });
    g.finish();

    // The P-256 scalar multiplications (a lane does three DH and three public keys per capture,
    // the vault one DH): AWS-LC, which the crate uses, against RustCrypto `p256`, which it used.
    let mut g = c.benchmark_group("p256");
    let peer = overview.public_key();
    let peer_p256 = p256::PublicKey::from_sec1_bytes(&peer.to_sec1_bytes()).unwrap();
    let scalar = face.to_bytes();
    g.bench_function("dh/aws-lc", |b| b.iter(|| face.diffie_hellman(black_box(&peer)).unwrap()));
    g.bench_function("dh/peer_rustcrypto_p256", |b| {
        let sk = p256::SecretKey::from_bytes((&*scalar).into()).unwrap();
        b.iter(|| p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), black_box(&peer_p256).as_affine()))
    });
    g.bench_function("key_and_public_key/aws-lc", |b| {
        b.iter(|| EpochSecretKey::from_bytes(black_box(&scalar)).unwrap().public_key())
    });
    g.bench_function("key_and_public_key/peer_rustcrypto_p256", |b| {
        b.iter(|| p256::SecretKey::from_bytes(black_box(&*scalar).into()).unwrap().public_key())
    });
    g.finish();
}

fn data_concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

criterion_group!(benches, bench);
criterion_main!(benches);
