//! Hashing speed, one core, same files, same run: ours (`pdq-fast-v1`, `pdq-canonical-v1`,
//! each from JPEG bytes to hash) beside Python `pdqhash` from PyPI (Pillow decode + the
//! ThreatExchange C++ core), `benches/py/pdqhash_speed.py`. The files are demo overviews
//! re-encoded as 1920×1080 JPEGs (q85), the size the goal names (≥ 150 images/s/core
//! on `pdq-fast-v1`).
//!
//! `LEAK_IMAGES=200 PYTHON=/path/to/venv/bin/python cargo bench -p custodia --bench leak_hash_speed`

use std::time::Instant;

use custodia_pdq::Pipeline;
use custodia_synth::{FileRole, TrafficConfig};

fn main() {
    let n: usize = std::env::var("LEAK_IMAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let traffic = TrafficConfig { captures: n as u32, ..TrafficConfig::demo(2, 1_780_000_000_000) };
    let dir = std::env::temp_dir().join(format!("custodia-hash-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for c in custodia_synth::generate(&traffic) {
        let Some(f) = c.files.iter().find(|f| f.role == FileRole::Overview && f.bytes.starts_with(&[0xFF, 0xD8])) else {
            continue;
        };
        let img = image::load_from_memory(&f.bytes).unwrap().resize_exact(1920, 1080, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img.to_rgb8()).unwrap();
        let path = dir.join(format!("{:04}.jpg", files.len()));
        std::fs::write(&path, &out).unwrap();
        files.push((path, out));
    }
    println!("{} demo overviews as 1920x1080 JPEG q85 (mean {} KB)", files.len(), files.iter().map(|f| f.1.len()).sum::<usize>() / files.len() / 1000);
    for pipeline in [Pipeline::FastV1, Pipeline::CanonicalV1] {
        let t = Instant::now();
        for (_, bytes) in &files {
            std::hint::black_box(custodia_pdq::hash_bytes(bytes, pipeline).unwrap());
        }
        let s = t.elapsed().as_secs_f64();
        println!("ours {pipeline}: {:.1} images/s ({:.2} ms each)", files.len() as f64 / s, s * 1e3 / files.len() as f64);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/py/pdqhash_speed.py");
    let out = std::process::Command::new(&python).arg(script).args(files.iter().map(|f| &f.0)).output();
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let (all, hash) = (v["decode_and_hash_s"].as_f64().unwrap(), v["hash_only_s"].as_f64().unwrap());
            println!(
                "Python pdqhash (Pillow decode + C++ core): {:.1} images/s ({:.2} ms each); hash of a decoded array alone {:.2} ms",
                files.len() as f64 / all,
                all * 1e3 / files.len() as f64,
                hash * 1e3 / files.len() as f64
            );
            let ours = custodia_pdq::hash_bytes(&files[0].1, Pipeline::CanonicalV1).unwrap();
            println!(
                "first image: pdqhash {} q{}, ours canonical {} q{} (distance {})",
                v["first_hash"].as_str().unwrap(),
                v["first_quality"],
                ours.hash,
                ours.quality,
                ours.hash.hamming(&v["first_hash"].as_str().unwrap().parse().unwrap())
            );
        }
        Ok(o) => println!("pdqhash run failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("pdqhash not run ({python}: {e}); set PYTHON to a Python with pdqhash and Pillow"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
