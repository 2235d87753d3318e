//! Generation cost per capture. The budget is ~15 ms per capture on one core, so the demo's
//! default run (3000 captures) renders in well under a minute on two cores.
//!
//! `jpeg_encode_floor` encodes an overview-sized frame and nothing else: the encoder is the
//! main cost by design, so `capture/render` over `jpeg_encode_floor` is the overhead of drawing.

use criterion::{Criterion, criterion_group, criterion_main};
use custodia_synth::{CapturePlan, TrafficConfig, plan, render, sample_capture_bytes};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let config = TrafficConfig::demo(42, 1_715_000_000_000);
    let plans: Vec<CapturePlan> = plan(&config).take(64).collect();
    let mut i = 0;
    c.bench_function("capture/render", |b| {
        b.iter(|| {
            let p = &plans[i % plans.len()];
            i += 1;
            black_box(render(&config, p))
        })
    });
    c.bench_function("capture/plan", |b| b.iter(|| black_box(plan(&config).take(64).count())));
    c.bench_function("sample_capture_bytes", |b| b.iter(|| black_box(sample_capture_bytes(7))));

    let (overview, _, _) = sample_capture_bytes(7);
    let rgb = image::load_from_memory(&overview).expect("decodes").to_rgb8();
    let (w, h) = rgb.dimensions();
    c.bench_function("jpeg_encode_floor", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(256 * 1024);
            jpeg_encoder::Encoder::new(&mut out, 82)
                .encode(rgb.as_raw(), w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
                .expect("encodes");
            black_box(out)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
