//! Perceptual hashes of each stripped image, computed before sealing (DESIGN.md §6).
//!
//! The lane is the last place the plaintext exists, so every hash the vault will ever search by
//! is made here: `pdq-fast-v1` of the whole image (`variant` = `full`) and of each of the
//! standard crops ([`custodia_pdq::crops::STANDARD_CROP_NAMES`]), because PDQ does not survive
//! cropping beyond ~1–2 % per side and leaked copies are often cropped.
//!
//! An image the hasher cannot decode still gets sealed (the stripper already accepted it); it
//! simply carries fewer or no hashes, which the vault's scan reports as "not searchable".

use custodia_pdq::Pipeline;
use custodia_seal::metadata::PdqRecord;

/// The pipeline the lane hashes with. Scans must hash finds with the same one.
pub const LANE_PIPELINE: Pipeline = Pipeline::FastV1;

/// The `variant` name of the whole-image hash.
pub const FULL_VARIANT: &str = "full";

/// Hashes of one stripped JPEG or PNG: `full` first, then the standard crops in their fixed
/// order. Empty when the bytes cannot be decoded within `custodia-pdq`'s limits.
pub fn image_hashes(bytes: &[u8]) -> Vec<PdqRecord> {
    let record = |variant: &str, r: custodia_pdq::PdqResult| PdqRecord {
        pipeline: r.pipeline.name().to_string(),
        variant: variant.to_string(),
        hash: r.hash.to_string(),
        quality: r.quality,
    };
    // One full decode and one luma plane for all five crops; the whole-image hash keeps the
    // pipeline's DCT-domain shortcut.
    match custodia_pdq::hash_bytes_with_crops(bytes, LANE_PIPELINE) {
        Ok(hashes) => hashes
            .into_iter()
            .map(|(variant, r)| record(if variant == "full" { FULL_VARIANT } else { variant }, r))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_gets_no_hashes() {
        assert!(image_hashes(b"not an image").is_empty());
    }
}
