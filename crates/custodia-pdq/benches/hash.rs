//! Hashing a 1080p JPEG on both pipelines, single-threaded (so images/s is per core).
//!
//! The input is made here from the conformance photo (testdata/pdq/bridge-mods/aaa-orig.jpg),
//! resized to 1920×1080 and re-encoded at quality 90 by the `image` crate, which keeps full-size
//! (4:4:4) chroma: twice the chroma blocks of a typical camera's 4:2:0 frame, so the harder case
//! for `pdq-fast-v1`, which must entropy-decode chroma it then discards. Criterion's throughput
//! line reads directly as images per second per core.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custodia_pdq::{Pipeline, hash_bytes, hash_bytes_dihedral};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

fn frame_1080p() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pdq/bridge-mods/aaa-orig.jpg");
    let src = custodia_pdq::decode_image(&std::fs::read(path).expect("test photo")).expect("decode");
    let frame = src.resize_exact(1920, 1080, FilterType::Triangle).to_rgb8();
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, 90).encode_image(&frame).expect("encode");
    out.into_inner()
}

fn bench(c: &mut Criterion) {
    let jpeg = frame_1080p();
    let mut g = c.benchmark_group("hash_1080p_jpeg");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for p in Pipeline::ALL {
        g.bench_function(p.name(), |b| b.iter(|| hash_bytes(black_box(&jpeg), p).unwrap()));
        g.bench_function(format!("{}/dihedral", p.name()), |b| {
            b.iter(|| hash_bytes_dihedral(black_box(&jpeg), p).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
