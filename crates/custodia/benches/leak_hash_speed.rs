//! Hashing speed, one core, same files, same run: ours (`pdq-fast-v1`, `pdq-canonical-v1`,
//! each from JPEG bytes to hash) beside Python `pdqhash` from PyPI (Pillow decode + the
//! ThreatExchange C++ core), `benches/py/pdqhash_speed.py`. The files are demo overviews
//! re-encoded as 1920×1080 JPEGs (q85), the size the goal names (≥ 150 images/s/core
//! on `pdq-fast-v1`).
//!
//! With `PDQ_REFERENCE_BIN` set, the same run also times ThreatExchange's own C++ command-line
//! hasher (`pdq/cpp`, `pdq-photo-hasher`) on the same files: one process given every path, so
//! process start-up is paid once, not per image; wall-clock from spawn to exit. Build it by
//! hand outside this repository (nothing of it is committed): from a checkout of
//! facebook/ThreatExchange, in `pdq/cpp`, `make pdq-photo-hasher CFLAGS=-Dcimg_use_jpeg
//! LFLAGS="-lm -lpthread -ljpeg"` (its Makefile's `-O3 -g -std=c++11`; needs g++, make and
//! libjpeg-dev), so CImg decodes JPEG in-process with libjpeg rather than through an
//! ImageMagick subprocess. That tool shrinks any image over 512 px to 512×512 (CImg
//! nearest-neighbour) before hashing, so it does less work than `pdq-canonical-v1` (full
//! size) and its hashes differ from ours on these files (about 9 bits on average from
//! canonical, 8 from fast); a private build with that step removed (`DOWNSAMPLE_DIMS` in
//! `io/pdqio.cpp` raised) gave ours canonical's hash on all 200 files. The bench prints the
//! first file's distance and the mean over all.
//!
//! `LEAK_IMAGES=200 PYTHON=/path/to/venv/bin/python PDQ_REFERENCE_BIN=/path/to/pdq-photo-hasher
//! cargo bench -p custodia --bench leak_hash_speed`

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
        let Some(f) = c.files.iter().find(|f| f.role == FileRole::Overview && f.bytes.starts_with(&[0xFF, 0xD8]))
        else {
            continue;
        };
        let img =
            image::load_from_memory(&f.bytes).unwrap().resize_exact(1920, 1080, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img.to_rgb8()).unwrap();
        let path = dir.join(format!("{:04}.jpg", files.len()));
        std::fs::write(&path, &out).unwrap();
        files.push((path, out));
    }
    println!(
        "{} demo overviews as 1920x1080 JPEG q85 (mean {} KB)",
        files.len(),
        files.iter().map(|f| f.1.len()).sum::<usize>() / files.len() / 1000
    );
    // Per pipeline: images/s and every hash (kept to compare with the C++ reference below).
    let mut ours = Vec::new();
    for pipeline in [Pipeline::FastV1, Pipeline::CanonicalV1] {
        let mut hashes = Vec::with_capacity(files.len());
        let t = Instant::now();
        for (_, bytes) in &files {
            hashes.push(std::hint::black_box(custodia_pdq::hash_bytes(bytes, pipeline).unwrap()).hash);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "ours {pipeline}: {:.1} images/s ({:.2} ms each)",
            files.len() as f64 / s,
            s * 1e3 / files.len() as f64
        );
        ours.push((pipeline, files.len() as f64 / s, hashes));
    }
    reference(&files, &ours);
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

/// Times ThreatExchange's C++ `pdq-photo-hasher` (path in `PDQ_REFERENCE_BIN`) over the same
/// files in one process, and compares its hashes with ours.
fn reference(files: &[(std::path::PathBuf, Vec<u8>)], ours: &[(Pipeline, f64, Vec<custodia_pdq::PdqHash>)]) {
    let Some(bin) = std::env::var_os("PDQ_REFERENCE_BIN") else {
        println!(
            "ThreatExchange C++ reference not run: set PDQ_REFERENCE_BIN to a pdq-photo-hasher built from facebook/ThreatExchange pdq/cpp (see this bench's module doc)"
        );
        return;
    };
    let bin = std::path::PathBuf::from(bin);
    // `--info` (on stderr) says how its CImg was built; without `cimg_use_jpeg` every JPEG would
    // go through an ImageMagick `convert` subprocess and we would be timing that instead.
    let decoder = match std::process::Command::new(&bin).arg("--info").output() {
        Ok(o)
            if [&o.stdout, &o.stderr]
                .iter()
                .any(|b| String::from_utf8_lossy(b).contains("'cimg_use_jpeg' defined")) =>
        {
            "CImg+libjpeg decode"
        }
        Ok(_) => "CImg WITHOUT libjpeg: JPEG decoded by an ImageMagick subprocess",
        Err(e) => {
            println!("ThreatExchange C++ reference not run ({}: {e})", bin.display());
            return;
        }
    };
    let t = Instant::now();
    let out = std::process::Command::new(&bin).args(files.iter().map(|f| &f.0)).output();
    let s = t.elapsed().as_secs_f64();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return println!(
                "ThreatExchange C++ reference failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Err(e) => return println!("ThreatExchange C++ reference not run ({}: {e})", bin.display()),
    };
    // One line per file, in argument order: `hash,quality,filename`.
    let text = String::from_utf8_lossy(&out.stdout);
    let theirs: Vec<(custodia_pdq::PdqHash, &str)> = text
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, ',');
            (f.next().unwrap().parse().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(theirs.len(), files.len(), "reference printed {} hashes for {} files", theirs.len(), files.len());
    let rate = files.len() as f64 / s;
    println!(
        "ThreatExchange C++ reference pdq-photo-hasher ({decoder}, -O3; one process over all {} files, start-up included once): {rate:.1} images/s ({:.2} ms each)",
        files.len(),
        s * 1e3 / files.len() as f64
    );
    for (pipeline, ours_rate, hashes) in ours {
        let d: Vec<u32> = hashes.iter().zip(&theirs).map(|(a, b)| a.hamming(&b.0)).collect();
        println!(
            "ours {pipeline} / reference: {:.2}x the speed; hash distance to reference: first file {}, mean {:.1}, max {}, equal on {}/{}",
            ours_rate / rate,
            d[0],
            d.iter().sum::<u32>() as f64 / d.len() as f64,
            d.iter().max().unwrap(),
            d.iter().filter(|&&x| x == 0).count(),
            d.len()
        );
    }
    let canonical = &ours.iter().find(|o| o.0 == Pipeline::CanonicalV1).unwrap().2[0];
    println!(
        "first image: reference {} q{}, ours canonical {canonical} (distance {})",
        theirs[0].0,
        theirs[0].1,
        canonical.hamming(&theirs[0].0)
    );
}
