//! Hostile input must give an error or a hash, never a panic, a hang or a huge allocation.
//! A deterministic mutation sweep over the conformance files (bit flips, byte runs, cuts,
//! marker splices) exercises the JPEG and PNG decoders' error paths on every CI run; the
//! libFuzzer target `fuzz/fuzz_targets/pdq_decode.rs` does the same open-ended.

use std::path::PathBuf;

use custodia_pdq::{Pipeline, hash_bytes};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(src: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut v = src.to_vec();
    match r.below(5) {
        0 => {
            for _ in 0..1 + r.below(8) {
                let i = r.below(v.len());
                v[i] ^= 1 << r.below(8);
            }
        }
        1 => {
            let i = r.below(v.len());
            let n = r.below(64).min(v.len() - i);
            let b = r.next() as u8;
            v[i..i + n].fill(b);
        }
        2 => v.truncate(r.below(v.len())),
        3 => {
            // Splice a random marker somewhere (0xFF xx).
            let i = r.below(v.len());
            v.insert(i, 0xFF);
            v.insert(i + 1, r.next() as u8);
        }
        _ => {
            // Corrupt the header region, where sizes and tables live.
            for _ in 0..4 {
                let i = r.below(v.len().min(700));
                v[i] = r.next() as u8;
            }
        }
    }
    v
}

#[test]
fn mutated_inputs_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/pdq");
    // Small files keep the sweep fast in debug builds; they cover baseline 4:2:0,
    // progressive 4:4:4 with an Adobe marker, and (via c.png's header) PNG.
    let files = ["wee.jpg", "bridge-mods/shrink-a-lot.jpg", "bridge-mods/square-128x128.jpg"];
    let mut r = Rng(0x00DD_BA11);
    let mut accepted = 0;
    let mut total = 0;
    for f in files {
        let src = std::fs::read(dir.join(f)).expect("testdata");
        for _ in 0..300 {
            let m = mutate(&src, &mut r);
            for p in Pipeline::ALL {
                total += 1;
                if let Ok(h) = hash_bytes(&m, p) {
                    assert!(h.quality <= 100);
                    accepted += 1;
                }
            }
        }
    }
    let png = std::fs::read(dir.join("c.png")).expect("testdata");
    for _ in 0..40 {
        let mut m = png[..4096.min(png.len())].to_vec();
        let i = 8 + r.below(60);
        m[i] = r.next() as u8;
        let _ = hash_bytes(&m, Pipeline::CanonicalV1);
    }
    // Both outcomes must occur, or the sweep is not testing what it claims.
    assert!(accepted > 0 && accepted < total, "accepted {accepted} of {total}");
}
