//! Stripping a ~200 KB camera JPEG (with a 12 KB EXIF block, as lane cameras write) and a PNG.
//! The lane's whole per-capture budget is 2 ms; stripping should be a small part of it.
//!
//! Run: `cargo bench -p custodia-lane --bench strip`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use custodia_lane::strip::strip_metadata;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use std::hint::black_box;

/// A textured frame: smooth gradients plus pseudo-random noise so the JPEG size is realistic.
fn frame(w: u32, h: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state & 0x3F) as u32;
            px.extend_from_slice(&[
                ((x * 255 / w + n) & 0xFF) as u8,
                ((y * 255 / h + n) & 0xFF) as u8,
                (((x ^ y) + n) & 0xFF) as u8,
            ]);
        }
    }
    px
}

fn camera_jpeg(target: usize) -> Vec<u8> {
    // Grow the frame until the encoded JPEG reaches the target size.
    let mut w = 320;
    loop {
        let h = w * 9 / 16;
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90).write_image(&frame(w, h), w, h, ExtendedColorType::Rgb8).unwrap();
        if out.len() >= target {
            let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
            exif.resize(12 * 1024, 0x20);
            let mut with = out[..2].to_vec();
            with.extend_from_slice(&[0xFF, 0xE1]);
            with.extend_from_slice(&u16::try_from(exif.len() + 2).unwrap().to_be_bytes());
            with.extend_from_slice(&exif);
            with.extend_from_slice(&out[2..]);
            return with;
        }
        w += 32;
    }
}

fn camera_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(&frame(w, h), w, h, ExtendedColorType::Rgb8).unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let jpeg = camera_jpeg(200 * 1024);
    let png = camera_png(320, 240);
    let mut g = c.benchmark_group("strip_metadata");
    for (name, bytes) in [("jpeg", &jpeg), ("png", &png)] {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new(name, bytes.len()), bytes, |b, bytes| {
            b.iter(|| strip_metadata(black_box(bytes)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
