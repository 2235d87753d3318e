//! The PDQ arithmetic, step for step as Meta's reference `pdq/cpp` does it.
//!
//! Every operation here is chosen for bit-exactness with the reference, not for elegance:
//! the same `f32`/`f64` choice at each step, the same summation order, the same integer
//! truncations. Rust never contracts `a * b + c` into a fused multiply-add and never
//! reassociates float sums, so a straight transcription reproduces the reference's IEEE
//! results. Where a loop is reorganised for speed (the column box filter runs all columns
//! side by side), each output is still computed by the same sequence of operations.

use crate::hash::PdqHash;

/// The reference's smallest hashable side (`MIN_HASHABLE_DIM`); smaller images hash to
/// all-zero bits with quality 0.
pub(crate) const MIN_HASHABLE_DIM: usize = 5;

/// The reference runs the Jarosz tent filter as two X/Y box passes (`PDQ_NUM_JAROSZ_XY_PASSES`).
const JAROSZ_PASSES: usize = 2;

/// Luma coefficients as the reference writes them (`luma_from_R_coeff` etc.).
const LUMA_R: f64 = 0.299;
const LUMA_G: f64 = 0.587;
const LUMA_B: f64 = 0.114;

/// One pixel's luma exactly as the published example hashes were made: ThreatExchange's
/// Python path (`pdqhash.compute`) forms `R*0.299 + G*0.587 + B*0.114` in `f64` (numpy) and
/// stores it as `f32`; the C++ `fillFloatLumaFromRGB` does the same sum in `f32`. The two
/// differ in the last bit for some pixels. Both reproduce all 14 published examples (checked
/// by swapping them under `tests/conformance.rs`); we follow the path that made them.
#[inline]
pub(crate) fn luma_f64(r: u8, g: u8, b: u8) -> f32 {
    (f64::from(r) * LUMA_R + f64::from(g) * LUMA_G + f64::from(b) * LUMA_B) as f32
}

/// The C++ reference's `fillFloatLumaFromRGB` arithmetic (all `f32`).
#[inline]
#[allow(dead_code)] // kept to document and test the difference against `luma_f64`
pub(crate) fn luma_f32(r: u8, g: u8, b: u8) -> f32 {
    (LUMA_R as f32) * f32::from(r) + (LUMA_G as f32) * f32::from(g) + (LUMA_B as f32) * f32::from(b)
}

/// `computeJaroszFilterWindowSize(old, 64)`: half of `old/64`, rounded up.
#[inline]
pub(crate) fn jarosz_window(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// The reference's `box1DFloat` phase counts for one vector.
struct Phases {
    p1: usize,
    p2: usize,
    p3: usize,
    p4: usize,
}

impl Phases {
    fn new(len: usize, window: usize) -> Phases {
        // The window never exceeds the vector: jarosz_window(n, 64) <= n for n >= 1.
        debug_assert!(window >= 1 && window <= len);
        let half = (window + 2) / 2;
        Phases { p1: half - 1, p2: window - half + 1, p3: len - window, p4: half - 1 }
    }
}

/// `box1DFloat` along one contiguous row.
fn box_row(input: &[f32], out: &mut [f32], window: usize) {
    let ph = Phases::new(input.len(), window);
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    let mut sum = 0.0f32;
    let mut count = 0u32;
    for _ in 0..ph.p1 {
        sum += input[ri];
        count += 1;
        ri += 1;
    }
    for _ in 0..ph.p2 {
        sum += input[ri];
        count += 1;
        out[oi] = sum / count as f32;
        ri += 1;
        oi += 1;
    }
    for _ in 0..ph.p3 {
        sum += input[ri];
        sum -= input[li];
        out[oi] = sum / count as f32;
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..ph.p4 {
        sum -= input[li];
        count -= 1;
        out[oi] = sum / count as f32;
        li += 1;
        oi += 1;
    }
}

/// `boxAlongColsFloat`, with every column's running sum advanced one row at a time so the
/// inner loop runs across a contiguous row (vectorisable) while each column sees exactly the
/// reference's sequence of adds, subtracts and divides.
fn box_cols(input: &[f32], out: &mut [f32], rows: usize, cols: usize, window: usize, sums: &mut [f32]) {
    let ph = Phases::new(rows, window);
    let sums = &mut sums[..cols];
    sums.fill(0.0);
    let row = |r: usize| &input[r * cols..(r + 1) * cols];
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    let mut count = 0u32;
    for _ in 0..ph.p1 {
        for (s, &x) in sums.iter_mut().zip(row(ri)) {
            *s += x;
        }
        count += 1;
        ri += 1;
    }
    for _ in 0..ph.p2 {
        count += 1;
        let c = count as f32;
        let o = &mut out[oi * cols..(oi + 1) * cols];
        for ((s, &x), o) in sums.iter_mut().zip(row(ri)).zip(o) {
            *s += x;
            *o = *s / c;
        }
        ri += 1;
        oi += 1;
    }
    let c = count as f32;
    for _ in 0..ph.p3 {
        let o = &mut out[oi * cols..(oi + 1) * cols];
        for (((s, &x), &y), o) in sums.iter_mut().zip(row(ri)).zip(row(li)).zip(o) {
            *s += x;
            *s -= y;
            *o = *s / c;
        }
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..ph.p4 {
        count -= 1;
        let c = count as f32;
        let o = &mut out[oi * cols..(oi + 1) * cols];
        for ((s, &y), o) in sums.iter_mut().zip(row(li)).zip(o) {
            *s -= y;
            *o = *s / c;
        }
        li += 1;
        oi += 1;
    }
}

/// `jaroszFilterFloat` + `decimateFloat` to 64×64. `buf1` holds the luma on entry and is
/// overwritten (as in the reference); `buf2` is scratch of the same size.
fn blur_and_decimate(buf1: &mut [f32], buf2: &mut [f32], rows: usize, cols: usize) -> Box<[[f32; 64]; 64]> {
    let mut out = Box::new([[0.0f32; 64]; 64]);
    if rows == 64 && cols == 64 {
        // The reference copies a 64×64 input straight through (pdqFloat256FromFloatLuma).
        for (i, r) in out.iter_mut().enumerate() {
            r.copy_from_slice(&buf1[i * 64..(i + 1) * 64]);
        }
        return out;
    }
    let win_rows = jarosz_window(cols, 64); // window along each row
    let win_cols = jarosz_window(rows, 64); // window along each column
    let mut sums = vec![0.0f32; cols];
    for _ in 0..JAROSZ_PASSES {
        for (i, o) in buf1.chunks_exact(cols).zip(buf2.chunks_exact_mut(cols)) {
            box_row(i, o, win_rows);
        }
        box_cols(buf2, buf1, rows, cols, win_cols, &mut sums);
    }
    for (oi, orow) in out.iter_mut().enumerate() {
        // Sample centres, not corners, computed in f64 and truncated as the reference does.
        let ii = (((oi as f64 + 0.5) * rows as f64) / 64.0) as usize;
        for (oj, o) in orow.iter_mut().enumerate() {
            let jj = (((oj as f64 + 0.5) * cols as f64) / 64.0) as usize;
            *o = buf1[ii * cols + jj];
        }
    }
    out
}

/// `pdqImageDomainQualityMetric`: count of significant gradients, with the reference's
/// `f32` arithmetic and integer truncations (`int d = ((u - v) * 100) / 255`, then `/ 90`).
fn quality(b: &[[f32; 64]; 64]) -> u32 {
    let mut gradient_sum: i32 = 0;
    for pair in b.windows(2) {
        for (&u, &v) in pair[0].iter().zip(pair[1].iter()) {
            let d = ((u - v) * 100.0 / 255.0) as i32;
            gradient_sum += d.abs();
        }
    }
    for row in b.iter() {
        for j in 0..63 {
            let d = ((row[j] - row[j + 1]) * 100.0 / 255.0) as i32;
            gradient_sum += d.abs();
        }
    }
    (gradient_sum / 90).clamp(0, 100) as u32
}

/// The reference's 16×64 DCT-II matrix (rows 1..=16 of the 64-point DCT): the scale is
/// rounded to `f32`, multiplied in `f64` by the `f64` cosine, and the product stored as `f32`.
fn dct_matrix() -> &'static [[f32; 64]; 16] {
    use std::sync::OnceLock;
    static M: OnceLock<[[f32; 64]; 16]> = OnceLock::new();
    M.get_or_init(|| {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut m = [[0.0f32; 64]; 16];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let angle = (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                *v = (f64::from(scale) * angle.cos()) as f32;
            }
        }
        m
    })
}

/// `dct64To16`: B = D A Dᵀ with sequential `f32` sums over k = 0..64.
fn dct64_to_16(a: &[[f32; 64]; 64]) -> [[f32; 16]; 16] {
    let d = dct_matrix();
    let mut t = [[0.0f32; 64]; 16];
    for i in 0..16 {
        // Same per-element order as the reference (k ascending), run across j in parallel.
        let ti = &mut t[i];
        for k in 0..64 {
            let dik = d[i][k];
            for (tv, &av) in ti.iter_mut().zip(a[k].iter()) {
                *tv += dik * av;
            }
        }
    }
    let mut b = [[0.0f32; 16]; 16];
    for i in 0..16 {
        for j in 0..16 {
            let mut s = 0.0f32;
            for k in 0..64 {
                s += t[i][k] * d[j][k];
            }
            b[i][j] = s;
        }
    }
    b
}

/// Torben Mogensen's median (public domain, N. Devillard's implementation) as the reference
/// uses it: for even n it returns the lower-middle element, with `f32` midpoints.
fn torben(m: &[f32]) -> f32 {
    let n = m.len();
    let mut min = m[0];
    let mut max = m[0];
    for &x in &m[1..] {
        if x < min {
            min = x;
        }
        if x > max {
            max = x;
        }
    }
    let half = n.div_ceil(2);
    loop {
        let guess = (min + max) / 2.0;
        let (mut less, mut greater, mut equal) = (0usize, 0usize, 0usize);
        let mut maxltguess = min;
        let mut mingtguess = max;
        for &x in m {
            if x < guess {
                less += 1;
                if x > maxltguess {
                    maxltguess = x;
                }
            } else if x > guess {
                greater += 1;
                if x < mingtguess {
                    mingtguess = x;
                }
            } else {
                equal += 1;
            }
        }
        if less <= half && greater <= half {
            return if less >= half {
                maxltguess
            } else if less + equal >= half {
                guess
            } else {
                mingtguess
            };
        } else if less > greater {
            max = maxltguess;
        } else {
            min = mingtguess;
        }
        // NaN cannot reach here: luma is finite, and a NaN input would make every comparison
        // false, so `equal == n` and the first test above returns.
    }
}

/// `pdqBuffer16x16ToBits`: bit i*16+j is set where coefficient (i, j) exceeds the median.
fn to_bits(b: &[[f32; 16]; 16]) -> PdqHash {
    let flat: Vec<f32> = b.iter().flatten().copied().collect();
    let median = torben(&flat);
    let mut h = PdqHash::ZERO;
    for (k, &v) in flat.iter().enumerate() {
        if v > median {
            h.set_bit(k);
        }
    }
    h
}

/// The reference's DCT-domain dihedral transforms (`dct16OriginalTo*`), in the order of
/// [`crate::DihedralVariant::ALL`].
fn dihedral_dcts(a: &[[f32; 16]; 16]) -> [[[f32; 16]; 16]; 8] {
    let mut out = [[[0.0f32; 16]; 16]; 8];
    for i in 0..16 {
        for j in 0..16 {
            let v = a[i][j];
            let odd_i = i & 1 == 1;
            let odd_j = j & 1 == 1;
            let odd_ij = (i + j) & 1 == 1;
            out[0][i][j] = v;
            out[1][j][i] = if odd_j { v } else { -v }; // rotate 90
            out[2][i][j] = if odd_ij { -v } else { v }; // rotate 180
            out[3][j][i] = if odd_i { v } else { -v }; // rotate 270
            out[4][i][j] = if odd_i { v } else { -v }; // flip X
            out[5][i][j] = if odd_j { v } else { -v }; // flip Y
            out[6][j][i] = v; // flip +1 (transpose)
            out[7][j][i] = if odd_ij { -v } else { v }; // flip -1 (anti-transpose)
        }
    }
    out
}

/// The 16×16 DCT block and quality of a luma plane; `None` below the minimum size.
/// `luma` is consumed as the reference's `fullBuffer1` (it is blurred in place).
pub(crate) fn dct_and_quality(luma: &mut [f32], rows: usize, cols: usize) -> Option<([[f32; 16]; 16], u32)> {
    if rows < MIN_HASHABLE_DIM || cols < MIN_HASHABLE_DIM {
        return None;
    }
    let mut scratch = vec![0.0f32; rows * cols];
    let b64 = blur_and_decimate(luma, &mut scratch, rows, cols);
    let q = quality(&b64);
    Some((dct64_to_16(&b64), q))
}

pub(crate) fn hash_from_dct(dct: &[[f32; 16]; 16]) -> PdqHash {
    to_bits(dct)
}

pub(crate) fn dihedral_from_dct(dct: &[[f32; 16]; 16]) -> [PdqHash; 8] {
    let all = dihedral_dcts(dct);
    std::array::from_fn(|v| to_bits(&all[v]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_match_reference_formula() {
        // 1024 -> 8 is the reference's own worked example.
        assert_eq!(jarosz_window(1024, 64), 8);
        assert_eq!(jarosz_window(1600, 64), 13);
        assert_eq!(jarosz_window(128, 64), 1);
        assert_eq!(jarosz_window(5, 64), 1);
    }

    #[test]
    fn box_row_matches_reference_worked_example() {
        // downscaling.cpp's "7 and 4" table: inputs 0..16, window 7 gives these sums.
        let input: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let mut out = vec![0.0; 16];
        box_row(&input, &mut out, 7);
        let sums = [6, 10, 15, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 75, 65, 54];
        let counts = [4, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 5, 4];
        for k in 0..16 {
            assert_eq!(out[k], sums[k] as f32 / counts[k] as f32, "k={k}");
        }
        // box_cols must agree with box_row applied to the transpose.
        let mut col_out = vec![0.0; 16];
        let mut sums_buf = vec![0.0; 1];
        box_cols(&input, &mut col_out, 16, 1, 7, &mut sums_buf);
        assert_eq!(out, col_out);
    }

    #[test]
    fn torben_is_lower_median() {
        assert_eq!(torben(&[3.0, 1.0, 2.0, 4.0]), 2.0);
        assert_eq!(torben(&[5.0, 5.0, 5.0]), 5.0);
        let v: Vec<f32> = (0..256).rev().map(|x| x as f32 * 0.5).collect();
        assert_eq!(torben(&v), 63.5);
    }
}
