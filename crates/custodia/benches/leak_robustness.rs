//! Robustness of leak matching on demo images: recall per transform and false matches between
//! unrelated images, with exactly the product's code on both sides — the lane's stored hashes
//! (`custodia_lane::fingerprint::image_hashes`: full + 5 standard crops, `pdq-fast-v1`) and the
//! scan's query hashes (`leak::hash_find`: as found, bars stripped, trimmed 3.3 %, × 8
//! dihedral variants), matched at radius 31. Prints its figures; not a criterion bench.
//!
//! `cargo bench -p custodia --bench leak_robustness` (`LEAK_N=200` for more images)

#[allow(dead_code)]
#[path = "../src/leak.rs"]
mod leak;

use custodia_pdq::index::BruteForce;
use custodia_pdq::{PdqHash, Pipeline};
use custodia_synth::{FileRole, TrafficConfig};
use image::{DynamicImage, GenericImageView};

type Transform = (&'static str, Box<dyn Fn(&DynamicImage) -> Vec<u8>>);

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(&img.to_rgb8()).unwrap();
    out
}

fn resize(i: &DynamicImage, percent: u32) -> DynamicImage {
    i.resize_exact(i.width() * percent / 100, i.height() * percent / 100, image::imageops::FilterType::Triangle)
}

fn crop(i: &DynamicImage, per_mille: u32) -> DynamicImage {
    let (w, h) = i.dimensions();
    let (dx, dy) = (w * per_mille / 1000, h * per_mille / 1000);
    i.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy)
}

fn bars(i: &DynamicImage, vertical: bool) -> DynamicImage {
    let (w, h) = i.dimensions();
    let (bw, bh) = if vertical { (w / 6, 0) } else { (0, h / 6) };
    let mut out = image::RgbImage::new(w + 2 * bw, h + 2 * bh);
    image::imageops::overlay(&mut out, &i.to_rgb8(), i64::from(bw), i64::from(bh));
    DynamicImage::ImageRgb8(out)
}

fn transforms() -> Vec<Transform> {
    let mut t: Vec<Transform> = Vec::new();
    for q in [20u8, 30, 50, 70, 90] {
        t.push((Box::leak(format!("jpeg q{q}").into_boxed_str()), Box::new(move |i| jpeg(i, q))));
    }
    for p in [25u32, 50, 75, 150, 200] {
        t.push((Box::leak(format!("resize {p}%").into_boxed_str()), Box::new(move |i| jpeg(&resize(i, p), 85))));
    }
    t.push(("thumbnail 128 px", Box::new(|i| jpeg(&i.thumbnail(128, 128), 85))));
    t.push(("greyscale", Box::new(|i| jpeg(&DynamicImage::ImageLuma8(i.to_luma8()), 85))));
    t.push(("mirror left-right", Box::new(|i| jpeg(&i.fliph(), 85))));
    t.push(("mirror top-bottom", Box::new(|i| jpeg(&i.flipv(), 85))));
    t.push(("rotate 90", Box::new(|i| jpeg(&i.rotate90(), 85))));
    t.push(("rotate 180", Box::new(|i| jpeg(&i.rotate180(), 85))));
    t.push(("rotate 270", Box::new(|i| jpeg(&i.rotate270(), 85))));
    t.push(("crop 1% per side", Box::new(|i| jpeg(&crop(i, 10), 85))));
    t.push(("crop 2% per side", Box::new(|i| jpeg(&crop(i, 20), 85))));
    t.push(("crop 5% per side", Box::new(|i| jpeg(&crop(i, 50), 85))));
    t.push(("crop 8% per side", Box::new(|i| jpeg(&crop(i, 80), 85))));
    t.push(("letterbox bars", Box::new(|i| jpeg(&bars(i, false), 85))));
    t.push(("pillarbox bars", Box::new(|i| jpeg(&bars(i, true), 85))));
    t
}

fn main() {
    let n: usize = std::env::var("LEAK_N").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    // Demo traffic (4 lanes, 3 vendors); overviews and faces, one of each per capture.
    let traffic = TrafficConfig { captures: n as u32, ..TrafficConfig::demo(1, 1_780_000_000_000) };
    // (capture, role, bytes, who: the face's person id, or u64::MAX for overviews)
    let mut images: Vec<(u64, &'static str, Vec<u8>, u64)> = Vec::new();
    for c in custodia_synth::generate(&traffic) {
        for f in &c.files {
            let role = match f.role {
                FileRole::Overview => "overview",
                FileRole::Face => "face",
                _ => continue,
            };
            if images.iter().filter(|(i, r, _, _)| *i == c.index && *r == role).count() == 0 {
                let who = if role == "face" { c.person_ids[0] } else { u64::MAX };
                images.push((c.index, role, f.bytes.clone(), who));
            }
        }
    }
    let images: Vec<(u64, &str, Vec<u8>, u64)> =
        images.into_iter().filter(|(_, _, b, _)| b.starts_with(&[0xFF, 0xD8])).collect();
    println!("{} demo images ({} captures; overviews and faces as the cameras produced them)", images.len(), n);

    // Stored side: what the lane puts in the metadata part.
    let mut stored = BruteForce::new();
    let mut owner = Vec::new();
    for (k, (_, _, bytes, _)) in images.iter().enumerate() {
        for p in custodia_lane::fingerprint::image_hashes(bytes) {
            stored.insert(owner.len() as u64, &p.hash.parse::<PdqHash>().unwrap());
            owner.push(k);
        }
    }
    println!("{} stored hashes (full + standard crops)", owner.len());

    println!("\n| transform | recall (overview) | recall (face) | recall (all) | unrelated pairs matched |");
    println!("|---|---|---|---|---|");
    let mut total_pairs = 0u64;
    let mut total_false = 0u64;
    let mut escapes = Vec::new();
    for (name, f) in transforms() {
        let (mut hit, mut hit_role) = (0usize, [0usize; 2]);
        let mut count_role = [0usize; 2];
        let mut false_pairs = 0u64;
        for (k, (_, role, bytes, _)) in images.iter().enumerate() {
            let r = usize::from(*role == "face");
            count_role[r] += 1;
            let img = image::load_from_memory(bytes).unwrap();
            let find = f(&img);
            let Ok(versions) = leak::hash_find(&find, Pipeline::FastV1) else {
                escapes.push(format!("{name}: image {k} did not decode"));
                continue;
            };
            let mut matched_images = std::collections::BTreeSet::new();
            for (_, d) in &versions {
                for h in d.hashes {
                    for (id, _) in stored.query(&h, 31) {
                        matched_images.insert(owner[id as usize]);
                    }
                }
            }
            if matched_images.contains(&k) {
                hit += 1;
                hit_role[r] += 1;
            } else {
                escapes.push(format!("{name}: {role} {k}"));
            }
            // Unrelated: every image of a different capture, except faces of the same person
            // (regular occupants: the same face really is in both).
            let unrelated =
                |j: usize| images[j].0 != images[k].0 && (images[j].3 == u64::MAX || images[j].3 != images[k].3);
            false_pairs += matched_images.iter().filter(|&&j| unrelated(j)).count() as u64;
            total_pairs += (0..images.len()).filter(|&j| unrelated(j)).count() as u64;
        }
        total_false += false_pairs;
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {false_pairs} |",
            hit_role[0] as f64 / count_role[0].max(1) as f64,
            hit_role[1] as f64 / count_role[1].max(1) as f64,
            hit as f64 / images.len() as f64
        );
    }
    println!(
        "\nunrelated (different-capture) pairs compared: {total_pairs}; matched: {total_false} ({:.1} per million)",
        total_false as f64 * 1e6 / total_pairs as f64
    );
    println!("escapes ({}):", escapes.len());
    for e in escapes.iter().take(60) {
        println!("  {e}");
    }
}
