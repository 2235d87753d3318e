//! Standard crops and border stripping: PDQ's blind spots, covered on both sides.
//!
//! PDQ survives recompression and resizing but not cropping (2 % per side already costs
//! 28–94 bits) or added borders (DESIGN.md §6). So the lane also hashes a small fixed set
//! of crops of every image ([`standard_crops`]), and a scan strips letterbox/pillarbox bars
//! from what it finds ([`strip_borders`]) before hashing. The crop set is part of the
//! stored data's meaning: change it only with a new name.

use image::{DynamicImage, GenericImageView};

/// Fraction of each side, in per mille, removed by each named crop: (left, top, right, bottom).
const CROPS: [(&str, [u32; 4]); 5] = [
    ("inset-5", [50, 50, 50, 50]),
    ("inset-10", [100, 100, 100, 100]),
    ("inset-20", [200, 200, 200, 200]),
    // Banners (timestamps, watermarks, captions) are usually cut from the top or bottom.
    ("trim-top-10", [0, 100, 0, 0]),
    ("trim-bottom-10", [0, 0, 0, 100]),
];

/// The crop names [`standard_crops`] returns, in order.
pub const STANDARD_CROP_NAMES: [&str; 5] = [CROPS[0].0, CROPS[1].0, CROPS[2].0, CROPS[3].0, CROPS[4].0];

/// A crop's pixel window `(x0, y0, x1, y1)`, exclusive ends.
pub type CropWindow = (usize, usize, usize, usize);

/// The standard crops' pixel windows `(name, (x0, y0, x1, y1))` in an image of `w` × `h`
/// (exclusive ends), the same arithmetic for pixels and for luma planes. Empty under 20 px a side.
pub fn crop_windows(w: usize, h: usize) -> Vec<(&'static str, CropWindow)> {
    if w < 20 || h < 20 {
        return Vec::new();
    }
    CROPS
        .iter()
        .map(|&(name, [l, t, r, b])| {
            let (l, t, r, b) = (l as usize, t as usize, r as usize, b as usize);
            (name, (w * l / 1000, h * t / 1000, w - w * r / 1000, h - h * b / 1000))
        })
        .collect()
}

/// The fixed set of crops the lane hashes besides the whole image, each with a stable name.
/// Images too small to crop meaningfully (under 20 px a side) give an empty list.
pub fn standard_crops(img: &DynamicImage) -> Vec<(&'static str, DynamicImage)> {
    let (w, h) = img.dimensions();
    crop_windows(w as usize, h as usize)
        .into_iter()
        .map(|(name, (x0, y0, x1, y1))| (name, img.crop_imm(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)))
        .collect()
}

/// A row or column is part of a bar if its luma spread is at most this (0..255 scale):
/// JPEG ringing at a bar's edge stays well under it, picture content rarely does.
const BAR_MAX_SPREAD: f32 = 24.0;
/// ... and its mean is within this of the outermost line's mean (a bar is one colour).
const BAR_MAX_DRIFT: f32 = 12.0;
/// Never strip more than this fraction of a dimension from one side.
const MAX_STRIP_FRACTION: f32 = 0.45;

/// Remove near-uniform letterbox (top/bottom) and pillarbox (left/right) bars. An image
/// with no bars, or one that is uniform throughout, comes back unchanged.
pub fn strip_borders(img: &DynamicImage) -> DynamicImage {
    let (w, h) = img.dimensions();
    if w < 8 || h < 8 {
        return img.clone();
    }
    let l = crate::decode::luma_of(img);
    let (w, h) = (w as usize, h as usize);
    let at = |x: usize, y: usize| l.data[y * w + x];
    // Stats of a line: (mean, max - min).
    let stats = |it: &mut dyn Iterator<Item = f32>| {
        let (mut lo, mut hi, mut sum, mut n) = (f32::MAX, f32::MIN, 0.0f32, 0usize);
        for v in it {
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
            n += 1;
        }
        (sum / n.max(1) as f32, hi - lo)
    };
    let run = |len: usize, line: &dyn Fn(usize) -> (f32, f32)| -> usize {
        let (m0, s0) = line(0);
        if s0 > BAR_MAX_SPREAD {
            return 0;
        }
        let limit = (len as f32 * MAX_STRIP_FRACTION) as usize;
        let mut n = 0;
        while n < limit {
            let (m, s) = line(n);
            if s > BAR_MAX_SPREAD || (m - m0).abs() > BAR_MAX_DRIFT {
                break;
            }
            n += 1;
        }
        n
    };
    if stats(&mut l.data.iter().copied()).1 <= BAR_MAX_SPREAD {
        return img.clone(); // all "bar": nothing to keep
    }
    let top = run(h, &|i| stats(&mut (0..w).map(|x| at(x, i))));
    let bottom = run(h, &|i| stats(&mut (0..w).map(|x| at(x, h - 1 - i))));
    // Columns are judged only over the rows that survive the row strip.
    let (y0, y1) = (top, h - bottom);
    if y1 <= y0 {
        return img.clone();
    }
    let left = run(w, &|i| stats(&mut (y0..y1).map(|y| at(i, y))));
    let right = run(w, &|i| stats(&mut (y0..y1).map(|y| at(w - 1 - i, y))));
    let (x0, x1) = (left, w - right);
    if x1 <= x0 || (top, bottom, left, right) == (0, 0, 0, 0) {
        return img.clone();
    }
    img.crop_imm(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)
}
