//! Writes a small synthetic run to disk for eyeballing: `cargo run --release -p custodia-synth
//! --example dump -- <out_dir> [captures] [seed]`. Prints per-role size statistics.

use std::collections::BTreeMap;
use std::time::Instant;

use custodia_synth::{TrafficConfig, generate};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("synth-out"));
    let captures: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(40);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut config = TrafficConfig::demo(seed, 1_715_000_000_000);
    config.captures = captures;
    let mut sizes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let start = Instant::now();
    for c in generate(&config) {
        let dir = out.join(&c.lane);
        std::fs::create_dir_all(&dir)?;
        for f in &c.files {
            std::fs::write(dir.join(&f.name), &f.bytes)?;
            // SYNTH_PNG=1 also writes PNG copies, for viewers without JPEG support.
            if std::env::var_os("SYNTH_PNG").is_some() && f.name.ends_with(".jpg") {
                let img = image::load_from_memory(&f.bytes).map_err(std::io::Error::other)?;
                img.save(dir.join(format!("{}.png", f.name))).map_err(std::io::Error::other)?;
            }
            sizes.entry(format!("{:?}/{}", f.role, c.vendor.as_str())).or_default().push(f.bytes.len());
        }
    }
    let el = start.elapsed();
    println!("{captures} captures in {el:?} ({:?}/capture)", el / captures.max(1));
    for (k, mut v) in sizes {
        v.sort_unstable();
        println!("{k:45} n={:5} min={:7} median={:7} max={:7}", v.len(), v[0], v[v.len() / 2], v[v.len() - 1]);
    }
    Ok(())
}
