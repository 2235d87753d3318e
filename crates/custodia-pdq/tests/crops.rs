//! Standard crops and border stripping, on the conformance photo.

use custodia_pdq::crops::{STANDARD_CROP_NAMES, standard_crops, strip_borders};
use custodia_pdq::{decode_image, hash_image};
use image::{DynamicImage, GenericImage, GenericImageView, Rgb, RgbImage};

fn photo() -> DynamicImage {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pdq/bridge-mods/shrink-a-little.jpg");
    decode_image(&std::fs::read(path).expect("testdata")).expect("decode")
}

fn framed(img: &DynamicImage, left: u32, top: u32, right: u32, bottom: u32, colour: [u8; 3]) -> DynamicImage {
    let (w, h) = img.dimensions();
    let mut out = RgbImage::from_pixel(w + left + right, h + top + bottom, Rgb(colour));
    out.copy_from(&img.to_rgb8(), left, top).unwrap();
    DynamicImage::ImageRgb8(out)
}

#[test]
fn standard_crops_are_the_named_fixed_set() {
    let img = photo(); // 1152 × 723
    let crops = standard_crops(&img);
    let names: Vec<&str> = crops.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, STANDARD_CROP_NAMES);
    let dims: Vec<(u32, u32)> = crops.iter().map(|(_, c)| c.dimensions()).collect();
    assert_eq!(dims, [(1038, 651), (922, 579), (692, 435), (1152, 651), (1152, 651)]);
    assert!(standard_crops(&DynamicImage::new_rgb8(19, 100)).is_empty());
}

#[test]
fn a_cropped_leak_matches_its_stored_crop_not_the_original() {
    let img = photo();
    let original = hash_image(&img).hash;
    let (w, h) = img.dimensions();
    // The leaked copy lost ~5 % a side and was re-encoded smaller.
    let leak = img.crop_imm(w / 20 + 3, h / 20 - 2, w - w / 10 - 4, h - h / 10 + 1).thumbnail(600, 600);
    let leaked = hash_image(&leak).hash;
    let inset5 = hash_image(&standard_crops(&img)[0].1).hash;
    assert!(leaked.hamming(&original) > 31, "crop alone defeats PDQ: {}", leaked.hamming(&original));
    assert!(leaked.hamming(&inset5) <= 31, "stored crop finds it: {}", leaked.hamming(&inset5));
}

#[test]
fn strip_borders_removes_letterbox_and_pillarbox_bars() {
    let img = photo();
    let original = hash_image(&img).hash;
    for (l, t, r, b, colour) in [
        (0, 90, 0, 90, [0, 0, 0]),
        (150, 0, 150, 0, [0, 0, 0]),
        (40, 60, 40, 60, [255, 255, 255]),
        (0, 0, 0, 120, [16, 16, 16]),
    ] {
        let boxed = framed(&img, l, t, r, b, colour);
        let boxed_hash = hash_image(&boxed).hash;
        let stripped = strip_borders(&boxed);
        let d = hash_image(&stripped).hash.hamming(&original);
        assert!(boxed_hash.hamming(&original) > 31, "bars alone defeat PDQ");
        assert!(d <= 8, "bars {l},{t},{r},{b}: stripped to {:?}, {d} bits from original", stripped.dimensions());
        let (sw, sh) = stripped.dimensions();
        let (w, h) = img.dimensions();
        assert!(sw.abs_diff(w) <= 4 && sh.abs_diff(h) <= 4, "{:?} vs {:?}", (sw, sh), (w, h));
    }
}

#[test]
fn strip_borders_leaves_unframed_and_flat_images_alone() {
    let img = photo();
    assert_eq!(strip_borders(&img).dimensions(), img.dimensions());
    let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 200, Rgb([90, 90, 90])));
    assert_eq!(strip_borders(&flat).dimensions(), (300, 200));
}
