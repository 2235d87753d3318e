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

/// A JPEG marker segment: `FF m`, its length, its body.
fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
    s.extend_from_slice(body);
    s
}

/// A grey JPEG with frame marker `sof` of `width` × `height` and `components` components,
/// whose Huffman tables give one-bit codes only: DC difference 0, and for AC an end-of-band
/// run of 2¹⁴ blocks, so zero bits (which a decoder feeds at a marker) cover a whole frame.
/// `scans` are SOS bodies after the component list: (Ss, Se, Ah << 4 | Al); each scan has no
/// entropy-coded data.
fn hostile_jpeg(sof: u8, width: u16, height: u16, components: u8, scans: &[(u8, u8, u8)]) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1; 64]);
    j.extend(segment(0xDB, &dqt));
    let mut frame = vec![8];
    frame.extend_from_slice(&height.to_be_bytes());
    frame.extend_from_slice(&width.to_be_bytes());
    frame.push(components);
    for c in 1..=components {
        frame.extend_from_slice(&[c, 0x11, 0]);
    }
    j.extend(segment(sof, &frame));
    let one_code = [1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (class, symbol) in [(0x00u8, 0x00u8), (0x10, 0xE0)] {
        let mut dht = vec![class];
        dht.extend_from_slice(&one_code);
        dht.push(symbol);
        j.extend(segment(0xC4, &dht));
    }
    for &(ss, se, ahal) in scans {
        j.extend(segment(0xDA, &[1, 1, 0x00, ss, se, ahal]));
    }
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

fn refusal(bytes: &[u8]) -> String {
    let mut why = Vec::new();
    for p in Pipeline::ALL {
        match hash_bytes(bytes, p) {
            Ok(_) => panic!("{p:?} accepted a hostile JPEG of {} bytes", bytes.len()),
            Err(e) => why.push(e.to_string()),
        }
    }
    assert_eq!(why[0], why[1], "both pipelines refuse for the same reason");
    why.swap_remove(0)
}

/// The fuzzer's find (a CI timeout): a JPEG of a few hundred bytes declaring 100 MP whose
/// scans are all end-of-band runs decoded to a grey 100 MP image, seconds of work per hash.
/// Its frame is refused at the header, for our decoder and for zune-jpeg's kinds alike.
#[test]
fn a_frame_larger_than_its_data_can_cover_is_refused_at_the_header() {
    let ac_only = [(1, 63, 0x00)];
    let progressive = hostile_jpeg(0xC2, 10_000, 10_000, 1, &ac_only);
    assert!(progressive.len() < 200);
    assert!(refusal(&progressive).contains("too little data for the frame size"));
    // Four components: CMYK, which our decoder leaves to zune-jpeg.
    let cmyk = hostile_jpeg(0xC0, 10_000, 10_000, 4, &[(0, 63, 0x00)]);
    assert!(refusal(&cmyk).contains("too little data for the frame size"));
    // A frame its bytes can cover gets past the header: 8 × (bytes + 1,024) blocks.
    let small = hostile_jpeg(0xC2, 64, 64, 1, &[(0, 0, 0x00)]);
    assert!(hash_bytes(&small, Pipeline::CanonicalV1).is_ok());
}

/// Scans outside ITU T.81's progression (G.1.1.1) are refused, which caps how many scans
/// visit a coefficient at 14 however many the file holds: the same fuzz input, repeated
/// scan headers, cost 50 s per run at 16 MP before.
#[test]
fn scans_out_of_progression_order_are_refused() {
    let dc = (0, 0, 0x00);
    let ac = (1, 63, 0x00);
    let frame = |scans: &[(u8, u8, u8)]| hostile_jpeg(0xC2, 256, 256, 1, scans);
    // In order: DC first at Al 1, AC, then both refined down to Al 0.
    assert!(
        hash_bytes(&frame(&[(0, 0, 0x01), (1, 63, 0x01), (0, 0, 0x10), (1, 63, 0x10)]), Pipeline::CanonicalV1).is_ok()
    );
    assert!(refusal(&frame(&[ac])).contains("AC scan before the DC scan"));
    assert!(refusal(&frame(&[dc, ac, ac])).contains("scan out of progression order"));
    assert!(refusal(&frame(&[dc, dc])).contains("scan out of progression order"));
    // A refinement must lower the point transform by one bit (libjpeg's own error), and start
    // from the one the band was left at.
    assert!(refusal(&frame(&[dc, (1, 63, 0x02), (1, 63, 0x20)])).contains("bad progressive scan"));
    assert!(refusal(&frame(&[dc, (1, 63, 0x02), (1, 63, 0x10)])).contains("scan out of progression order"));
    // A band that overlaps one already sent.
    assert!(refusal(&frame(&[dc, (1, 5, 0x00), (5, 63, 0x00)])).contains("scan out of progression order"));
}
