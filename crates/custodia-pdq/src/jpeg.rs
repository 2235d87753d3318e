//! A JPEG decoder whose pixels equal libjpeg-turbo's default output, for `pdq-canonical-v1`.
//!
//! Why it exists: the published PDQ hashes were computed on pixels from libjpeg-turbo (via
//! Pillow) with its defaults: the accurate integer IDCT (`JDCT_ISLOW`), "fancy" triangle
//! upsampling of subsampled chroma, and its fixed-point YCbCr→RGB tables. The `image`
//! crate's decoder (zune-jpeg) uses a different IDCT rounding and colour conversion
//! ("may be ±2 of libjpeg-turbo", its own docs say), and jpeg-decoder uses stb_image's
//! IDCT; on the conformance images they differ from libjpeg-turbo in 10–25 % of samples by
//! up to 5 levels, which moves PDQ bits on small images (`wee.jpg`: 2 bits). Entropy
//! decoding is lossless, so only those three steps need to match, and they are integer
//! arithmetic that is re-implemented here from the published algorithms (IJG `jidctint.c`
//! "LL&M" IDCT, `jdsample.c` fancy upsampling, `jdcolor.c` tables).
//!
//! Scope: 8-bit Huffman JPEGs, baseline/extended (SOF0/SOF1) and progressive (SOF2), with
//! one (grey) or three (YCbCr, or RGB when an Adobe marker says so) components, any
//! sampling factors, restart intervals. Anything else (arithmetic coding, 12-bit, lossless,
//! CMYK/YCCK) returns `Unsupported` and the caller falls back to the `image` crate.
//! Corrupt data is an error; nothing here panics on hostile input (every index is checked
//! or bounded by construction, and arithmetic that the C code lets wrap wraps explicitly).
//!
//! Work is bounded by the input's length, not only by [`MAX_PIXELS`]: a 140-byte progressive
//! JPEG whose one scan is all end-of-band runs once declared 100 MP and cost seconds of IDCT.
//! Two rules, each refusing only what no encoder writes, keep the work within a few thousand
//! coefficient steps per input byte:
//! - [`entropy_data_can_cover`]: every block costs a Huffman-coded file at least one bit (its
//!   DC difference), so a frame with more blocks than 8 × (input + allowed padding) bytes is
//!   refused at its header.
//! - The progression rules of ITU T.81 G.1.1.1 (libjpeg's `JERR_BAD_PROGRESSION` and the
//!   cases it only warns about, `JWRN_BOGUS_PROGRESSION`): each coefficient of a component is
//!   sent once, then refined one bit at a time, and AC only after DC. So no coefficient is
//!   visited in more than 14 scans, however many scans the file holds.

use crate::decode::{MAX_DIMENSION, MAX_PIXELS};

/// Why the decoder stopped.
#[derive(Debug)]
pub(crate) enum JpegFail {
    /// Valid JPEG, but a kind this decoder leaves to the general one.
    Unsupported,
    /// Not a valid JPEG.
    Invalid(&'static str),
    /// The frame header declares more than `MAX_PIXELS` or a side over `MAX_DIMENSION`.
    TooLarge(u32, u32),
}

type R<T> = Result<T, JpegFail>;

fn bad<T>(why: &'static str) -> R<T> {
    Err(JpegFail::Invalid(why))
}

/// Decoded pixels: 1 (grey) or 3 (RGB) interleaved channels.
pub(crate) struct Decoded {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) channels: usize,
    pub(crate) pixels: Vec<u8>,
}

#[derive(Clone)]
struct Huff {
    /// 9-bit lookahead: (code length, symbol); length 0 = needs the slow path.
    fast: Vec<(u8, u8)>,
    /// [`COMBINED_LOOKAHEAD`]-bit lookahead for a sequential scan's codes whose extra bits fit
    /// too: `value << 16 | run << 8 | bits consumed`, with run [`EOB_RUN`] for an AC table's
    /// end of block, or 0 when the symbol needs the general path (ZRL, long codes).
    /// A fixed-size array, so a peek of that many bits indexes it with no bounds check.
    combined: Box<[i32; 1 << COMBINED_LOOKAHEAD]>,
    maxcode: [i32; 18],
    valoffset: [i32; 17],
    values: Vec<u8>,
}

const LOOKAHEAD: u32 = 9;

/// Lookahead of the combined code-and-value table. Wider than [`LOOKAHEAD`] because a code
/// and its extra bits together are often 10–11 bits at photo qualities, and each one the
/// table misses takes the two-step path; 2,048 `i32`s (8 KB) per AC table stay in L1.
const COMBINED_LOOKAHEAD: u32 = 11;

/// The run a combined entry gives an end of block: past any coefficient index, so the one
/// `k > 63` test that guards a run's overflow also catches it, off the common path.
const EOB_RUN: i32 = 64;

/// Zero bytes a scan may be fed past its data (libjpeg feeds zeros at a marker and carries
/// on). A real scan needs at most a few; beyond this the data is truncated.
const PADDING_BYTES_ALLOWED: usize = 1024;

/// Whether `len` bytes of Huffman-coded JPEG can hold `blocks` blocks. Each block's first scan
/// spends at least one bit on it (a DC difference is a Huffman code of one bit or more, and
/// a sequential block adds an end of block), so a complete file has at least `blocks / 8`
/// bytes; [`PADDING_BYTES_ALLOWED`] more may be fed as zeros. A necessary condition only:
/// files that pass may still be truncated, and the decoders refuse those as they find them.
pub(crate) fn entropy_data_can_cover(blocks: u64, len: usize) -> bool {
    blocks <= 8 * (len as u64 + PADDING_BYTES_ALLOWED as u64)
}

/// A coefficient no scan has sent yet (see `Comp::coef_al`).
const NOT_SENT: u8 = u8::MAX;

impl Huff {
    /// `dc`: the table's symbols are DC magnitude categories, not AC run/size pairs.
    fn new(counts: &[u8; 16], values: Vec<u8>, dc: bool) -> R<Huff> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || total != values.len() {
            return bad("bad Huffman table");
        }
        let mut h = Huff {
            fast: vec![(0, 0); 1 << LOOKAHEAD],
            combined: Box::new([0; 1 << COMBINED_LOOKAHEAD]),
            maxcode: [-1; 18],
            valoffset: [0; 17],
            values,
        };
        let mut code: i32 = 0;
        let mut k: i32 = 0;
        // Every (code, length, symbol) of the table, in canonical order.
        let mut codes: Vec<(usize, u32, u8)> = Vec::with_capacity(total);
        for l in 1..=16usize {
            let n = i32::from(counts[l - 1]);
            h.valoffset[l] = k - code;
            if n > 0 {
                for i in 0..n {
                    codes.push(((code + i) as usize, l as u32, h.values[(k + i) as usize]));
                }
                code += n;
                k += n;
                h.maxcode[l] = code - 1;
            }
            if code > (1 << l) {
                return bad("bad Huffman table");
            }
            code <<= 1;
        }
        h.maxcode[17] = i32::MAX;
        for &(c, len, sym) in &codes {
            if len <= LOOKAHEAD {
                let shift = LOOKAHEAD - len;
                for fill in 0..(1usize << shift) {
                    h.fast[(c << shift) | fill] = (len as u8, sym);
                }
            }
            // A DC symbol is its magnitude category; in a sequential scan an AC symbol with
            // no magnitude ends the block unless it is ZRL (libjpeg's decode_mcu), and ZRL,
            // rare, stays on the general path.
            let (run, size) = match (dc, sym >> 4, sym & 15) {
                (true, _, _) => (0, u32::from(sym)),
                (false, 15, 0) => continue,
                (false, _, 0) => (EOB_RUN, 0),
                (false, r, s) => (i32::from(r), u32::from(s)),
            };
            let total = len + size;
            if total > COMBINED_LOOKAHEAD {
                continue;
            }
            // Every peek starting with this code and any `size` extra bits.
            let shift = COMBINED_LOOKAHEAD - len;
            for fill in 0..(1usize << shift) {
                let peek = (c << shift) | fill;
                let raw = ((peek >> (COMBINED_LOOKAHEAD - total)) & ((1 << size) - 1)) as i32;
                let value = if size == 0 {
                    0
                } else if raw < (1 << (size - 1)) {
                    raw - (1 << size) + 1
                } else {
                    raw
                };
                h.combined[peek] = value << 16 | run << 8 | total as i32;
            }
        }
        Ok(h)
    }
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    count: u32,
    /// Zero bytes fed after the segment ended; too many means the data is truncated garbage.
    overrun: u32,
    /// A code not in the table was seen.
    bad_code: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits { data, pos, buf: 0, count: 0, overrun: 0, bad_code: false }
    }

    #[inline(never)]
    fn fill(&mut self) {
        // Fast path: the next eight bytes hold no 0xFF (no stuffing, no marker), so whole
        // bytes can be taken at once.
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let x = u64::from_be_bytes(b);
            // Bytes equal to 0xFF become 0x00 in !x; the classic zero-byte test finds them.
            let nx = !x;
            if (nx.wrapping_sub(0x0101_0101_0101_0101) & !nx & 0x8080_8080_8080_8080) == 0 {
                let take = (64 - self.count) / 8; // whole bytes that fit, 0..=8
                if take == 0 {
                    return;
                }
                let bits = take * 8;
                let v = if bits == 64 { x } else { x >> (64 - bits) };
                self.buf |= if bits == 64 { v } else { v << (64 - self.count - bits) };
                self.count += bits;
                self.pos += take as usize;
                return;
            }
        }
        self.fill_bytewise();
    }

    /// Refill one byte at a time, un-stuffing `FF 00` and feeding zeros at a marker or the
    /// end of data: the rare path, kept out of line so the common one inlines small.
    #[inline(never)]
    fn fill_bytewise(&mut self) {
        while self.count <= 56 {
            let mut byte = 0u8;
            match self.data.get(self.pos) {
                Some(&0xFF) => match self.data.get(self.pos + 1) {
                    Some(0x00) => {
                        byte = 0xFF;
                        self.pos += 2;
                    }
                    // A marker: libjpeg feeds zeros from here on; so do we.
                    _ => self.overrun += 1,
                },
                Some(&b) => {
                    byte = b;
                    self.pos += 1;
                }
                None => self.overrun += 1,
            }
            self.buf |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    fn check(&self) -> R<()> {
        // A real scan never needs more than a few padding bytes past its end.
        if self.bad_code {
            bad("bad Huffman code")
        } else if self.overrun as usize > PADDING_BYTES_ALLOWED {
            bad("truncated entropy data")
        } else {
            Ok(())
        }
    }

    #[inline(always)]
    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.fill();
        }
        let v = (self.buf >> (64 - n)) as u32;
        self.buf <<= n;
        self.count -= n;
        v
    }

    fn bit(&mut self) -> u32 {
        self.bits(1)
    }

    /// Decode one Huffman symbol. A code absent from the table sets `bad_code` (checked
    /// once per MCU by `check`) and yields 0, keeping the hot path free of `Result`s.
    #[inline(always)]
    fn decode(&mut self, h: &Huff) -> u8 {
        // 32 bits cover the longest code (16) plus its extra bits (up to 15), so the
        // following receive_extend never refills.
        if self.count < 32 {
            self.fill();
        }
        let peek = (self.buf >> (64 - LOOKAHEAD)) as usize;
        let (len, sym) = h.fast[peek];
        if len > 0 {
            self.buf <<= len;
            self.count -= u32::from(len);
            return sym;
        }
        self.decode_slow(h)
    }

    #[inline(never)]
    fn decode_slow(&mut self, h: &Huff) -> u8 {
        let mut code = 0i32;
        for l in 1..=16usize {
            code = (code << 1) | self.bit() as i32;
            if code <= h.maxcode[l] {
                let idx = code + h.valoffset[l];
                if let Some(&v) = h.values.get(idx as usize) {
                    return v;
                }
                break;
            }
        }
        self.bad_code = true;
        0
    }

    /// JPEG's EXTEND: an `s`-bit magnitude category to a signed value.
    #[inline(always)]
    fn receive_extend(&mut self, s: u8) -> i32 {
        if s == 0 || s > 16 {
            return 0;
        }
        let v = self.bits(u32::from(s)) as i32;
        if v < (1 << (s - 1)) { v - (1 << s) + 1 } else { v }
    }

    /// Drop buffered bits and step over the expected RSTn marker.
    fn restart(&mut self) -> R<()> {
        self.buf = 0;
        self.count = 0;
        self.overrun = 0;
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF && (0xD0..=0xD7).contains(&self.data[self.pos + 1]) {
                self.pos += 2;
                return Ok(());
            }
            self.pos += 1;
        }
        bad("missing restart marker")
    }
}

#[derive(Clone)]
struct Comp {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks per row / column in the coefficient buffer (whole MCUs).
    bw: usize,
    bh: usize,
    /// Blocks actually covering the component (non-interleaved scans use these).
    real_bw: usize,
    real_bh: usize,
    /// Component size in samples (libjpeg's downsampled_width/height).
    dw: usize,
    dh: usize,
    coefs: Vec<[i16; 64]>,
    /// Entropy-decoded only to stay in step; its coefficients are never kept
    /// (`pdq-fast-v1`'s chroma in a sequential JPEG).
    discard: bool,
    dc_pred: i32,
    dc_tbl: usize,
    ac_tbl: usize,
    /// Progressive frames: for each coefficient (zigzag order), the point transform `Al` of
    /// the last scan that sent or refined it, or [`NOT_SENT`].
    coef_al: [u8; 64],
}

impl Comp {
    /// A component as its frame header declares it; sizes follow once all are known.
    fn new(id: u8, h: usize, v: usize, tq: usize) -> Comp {
        Comp {
            id,
            h,
            v,
            tq,
            bw: 0,
            bh: 0,
            real_bw: 0,
            real_bh: 0,
            dw: 0,
            dh: 0,
            coefs: Vec::new(),
            discard: false,
            dc_pred: 0,
            dc_tbl: 0,
            ac_tbl: 0,
            coef_al: [NOT_SENT; 64],
        }
    }
}

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

struct Scan {
    comps: Vec<usize>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    qt: [[u16; 64]; 4],
    dc: [Option<Huff>; 4],
    ac: [Option<Huff>; 4],
    comps: Vec<Comp>,
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
    mcux: usize,
    mcuy: usize,
    progressive: bool,
    restart_interval: usize,
    eobrun: u32,
    jfif: bool,
    adobe_transform: Option<u8>,
    frame_seen: bool,
    /// `pdq-fast-v1`: in a sequential frame keep no chroma coefficients, and reduce a luma
    /// larger than this long side block by block as each is decoded.
    reduce_to: Option<usize>,
    /// The plane being reduced into, set up at the frame header when `reduce_to` applies.
    reduced: Option<Reduction>,
}

fn u16_at(d: &[u8], p: usize) -> R<usize> {
    match (d.get(p), d.get(p + 1)) {
        (Some(&a), Some(&b)) => Ok(usize::from(a) << 8 | usize::from(b)),
        _ => bad("truncated"),
    }
}

impl<'a> Decoder<'a> {
    fn segment(&self) -> R<&'a [u8]> {
        let len = u16_at(self.data, self.pos)?;
        if len < 2 || self.pos + len > self.data.len() {
            return bad("bad segment length");
        }
        Ok(&self.data[self.pos + 2..self.pos + len])
    }

    fn read_dqt(&mut self, mut s: &[u8]) -> R<()> {
        while !s.is_empty() {
            let pq = s[0] >> 4;
            let tq = usize::from(s[0] & 15);
            if tq > 3 || pq > 1 {
                return bad("bad DQT");
            }
            let n = if pq == 0 { 64 } else { 128 };
            if s.len() < 1 + n {
                return bad("bad DQT");
            }
            for k in 0..64 {
                let v =
                    if pq == 0 { u16::from(s[1 + k]) } else { u16::from(s[1 + 2 * k]) << 8 | u16::from(s[2 + 2 * k]) };
                self.qt[tq][ZIGZAG[k]] = v;
            }
            s = &s[1 + n..];
        }
        Ok(())
    }

    fn read_dht(&mut self, mut s: &[u8]) -> R<()> {
        while !s.is_empty() {
            if s.len() < 17 {
                return bad("bad DHT");
            }
            let tc = s[0] >> 4;
            let th = usize::from(s[0] & 15);
            if tc > 1 || th > 3 {
                return bad("bad DHT");
            }
            let mut counts = [0u8; 16];
            counts.copy_from_slice(&s[1..17]);
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            if s.len() < 17 + total {
                return bad("bad DHT");
            }
            let h = Huff::new(&counts, s[17..17 + total].to_vec(), tc == 0)?;
            if tc == 0 {
                self.dc[th] = Some(h)
            } else {
                self.ac[th] = Some(h)
            }
            s = &s[17 + total..];
        }
        Ok(())
    }

    fn read_sof(&mut self, s: &[u8]) -> R<()> {
        if self.frame_seen {
            return bad("two frames");
        }
        self.frame_seen = true;
        if s.len() < 6 || s[0] != 8 {
            return Err(JpegFail::Unsupported); // 12-bit and other precisions
        }
        self.height = u16_at(s, 1)?;
        self.width = u16_at(s, 3)?;
        let n = usize::from(s[5]);
        if self.width == 0 || self.height == 0 {
            return Err(JpegFail::Unsupported); // DNL-defined height
        }
        if self.width as u64 * self.height as u64 > MAX_PIXELS
            || self.width > MAX_DIMENSION as usize
            || self.height > MAX_DIMENSION as usize
        {
            return Err(JpegFail::TooLarge(self.width as u32, self.height as u32));
        }
        if n != 1 && n != 3 {
            return Err(JpegFail::Unsupported);
        }
        if s.len() < 6 + 3 * n {
            return bad("bad SOF");
        }
        for c in 0..n {
            let b = &s[6 + 3 * c..9 + 3 * c];
            let (h, v) = (usize::from(b[1] >> 4), usize::from(b[1] & 15));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || b[2] > 3 {
                return bad("bad sampling factors");
            }
            self.comps.push(Comp::new(b[0], h, v, usize::from(b[2])));
        }
        self.hmax = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
        self.vmax = self.comps.iter().map(|c| c.v).max().unwrap_or(1);
        for c in &self.comps {
            // libjpeg rejects fractional ratios (e.g. h=3 with hmax=4); so do we.
            if !self.hmax.is_multiple_of(c.h) || !self.vmax.is_multiple_of(c.v) {
                return Err(JpegFail::Unsupported);
            }
        }
        self.mcux = self.width.div_ceil(8 * self.hmax);
        self.mcuy = self.height.div_ceil(8 * self.vmax);
        let (w, h, hmax, vmax, mcux, mcuy) = (self.width, self.height, self.hmax, self.vmax, self.mcux, self.mcuy);
        for c in &mut self.comps {
            c.dw = (w * c.h).div_ceil(hmax);
            c.dh = (h * c.v).div_ceil(vmax);
            c.real_bw = c.dw.div_ceil(8);
            c.real_bh = c.dh.div_ceil(8);
            c.bw = mcux * c.h;
            c.bh = mcuy * c.v;
        }
        let blocks: u64 = self.comps.iter().map(|c| (c.real_bw * c.real_bh) as u64).sum();
        if !entropy_data_can_cover(blocks, self.data.len()) {
            return bad("too little data for the frame size");
        }
        let luma_only = self.reduce_to.is_some() && !self.progressive;
        self.reduced = match (luma_only, self.reduce_to, self.comps.first()) {
            (true, Some(max_side), Some(luma)) => Reduction::for_component(luma, max_side),
            _ => None,
        };
        let reducing = self.reduced.is_some();
        for (i, c) in self.comps.iter_mut().enumerate() {
            // Progressive refinement reads back earlier coefficients, so only a sequential
            // frame may drop a component's; a reduced luma lives in `reduced` instead.
            c.discard = luma_only && (i > 0 || reducing);
            c.coefs = if c.discard { Vec::new() } else { vec![[0i16; 64]; c.bw * c.bh] };
        }
        Ok(())
    }

    fn read_sos(&mut self, s: &[u8]) -> R<Scan> {
        if !self.frame_seen || s.is_empty() {
            return bad("scan before frame");
        }
        let n = usize::from(s[0]);
        if n == 0 || n > 4 || s.len() < 4 + 2 * n {
            return bad("bad SOS");
        }
        let mut comps = Vec::with_capacity(n);
        for k in 0..n {
            let id = s[1 + 2 * k];
            let t = s[2 + 2 * k];
            let Some(ci) = self.comps.iter().position(|c| c.id == id) else {
                return bad("unknown component");
            };
            self.comps[ci].dc_tbl = usize::from(t >> 4).min(3);
            self.comps[ci].ac_tbl = usize::from(t & 15).min(3);
            comps.push(ci);
        }
        let p = 1 + 2 * n;
        let (ss, se) = (usize::from(s[p]), usize::from(s[p + 1]));
        let (ah, al) = (u32::from(s[p + 2] >> 4), u32::from(s[p + 2] & 15));
        if self.progressive {
            // DC scans are exactly Ss = Se = 0; AC scans cover one component, Ss..=Se in 1..=63.
            let dc_scan = ss == 0 && se == 0;
            let ac_scan = ss >= 1 && ss <= se && se <= 63 && n == 1;
            // A refinement scan lowers the point transform by exactly one (libjpeg's error).
            let ok = (dc_scan || ac_scan) && al <= 13 && (ah == 0 || al + 1 == ah);
            if !ok {
                return bad("bad progressive scan");
            }
            // Each coefficient is sent once (Ah = 0), then refined from the Al it was left at;
            // AC follows DC. libjpeg only warns here and decodes on; we refuse, as no encoder
            // writes such a file, and the rule caps the scans that visit any coefficient.
            for &ci in &comps {
                let coef_al = &mut self.comps[ci].coef_al;
                if ss > 0 && coef_al[0] == NOT_SENT {
                    return bad("AC scan before the DC scan");
                }
                let expected = if ah == 0 { NOT_SENT } else { ah as u8 };
                if coef_al[ss..=se].iter().any(|&a| a != expected) {
                    return bad("scan out of progression order");
                }
                coef_al[ss..=se].fill(al as u8);
            }
        } else if ss != 0 || se != 63 || ah != 0 || al != 0 {
            // libjpeg tolerates odd values here for sequential JPEGs; treat as a full scan.
        }
        if n > 1 {
            let blocks: usize = comps.iter().map(|&c| self.comps[c].h * self.comps[c].v).sum();
            if blocks > 10 {
                return bad("too many blocks per MCU");
            }
        }
        let (ss, se) = if self.progressive { (ss, se) } else { (0, 63) };
        Ok(Scan { comps, ss, se, ah, al })
    }

    fn decode_scan(&mut self, scan: &Scan) -> R<()> {
        for &c in &scan.comps {
            self.comps[c].dc_pred = 0;
        }
        self.eobrun = 0;
        let mut bits = Bits::new(self.data, self.pos);
        let single = scan.comps.len() == 1;
        let (units_x, units_y) = if single {
            let c = &self.comps[scan.comps[0]];
            (c.real_bw, c.real_bh)
        } else {
            (self.mcux, self.mcuy)
        };
        let total = units_x * units_y;
        for unit in 0..total {
            if self.restart_interval > 0 && unit > 0 && unit % self.restart_interval == 0 {
                bits.restart()?;
                for &c in &scan.comps {
                    self.comps[c].dc_pred = 0;
                }
                self.eobrun = 0;
            }
            let (ux, uy) = (unit % units_x, unit / units_x);
            if single {
                let ci = scan.comps[0];
                let bw = self.comps[ci].bw;
                self.decode_and_reduce(&mut bits, scan, ci, uy * bw + ux)?;
            } else {
                for &ci in &scan.comps {
                    let (h, v, bw) = (self.comps[ci].h, self.comps[ci].v, self.comps[ci].bw);
                    for by in 0..v {
                        for bx in 0..h {
                            let idx = (uy * v + by) * bw + ux * h + bx;
                            self.decode_and_reduce(&mut bits, scan, ci, idx)?;
                        }
                    }
                }
            }
            bits.check()?;
        }
        self.pos = bits.pos;
        Ok(())
    }

    /// Decode one block, and for a reduced luma, reduce it right after.
    #[inline(always)]
    fn decode_and_reduce(&mut self, bits: &mut Bits<'_>, scan: &Scan, ci: usize, idx: usize) -> R<()> {
        if self.progressive {
            return self.decode_progressive_block(bits, scan, ci, idx);
        }
        let comp = &mut self.comps[ci];
        let (Some(dc), Some(ac)) = (self.dc[comp.dc_tbl].as_ref(), self.ac[comp.ac_tbl].as_ref()) else {
            return bad("missing Huffman table");
        };
        if !comp.discard {
            let Some(block) = comp.coefs.get_mut(idx) else {
                return bad("block out of range");
            };
            return decode_sequential(bits, dc, ac, &mut comp.dc_pred, |k, v| block[ZIGZAG[k]] = v);
        }
        if idx >= comp.bw * comp.bh {
            return bad("block out of range");
        }
        let Some(r) = self.reduced.as_mut().filter(|_| ci == 0) else {
            // Decoded only to stay in step: nothing is kept.
            return decode_sequential(bits, dc, ac, &mut comp.dc_pred, |_, _| {});
        };
        let (bx, by) = (idx % comp.bw, idx / comp.bw);
        let at = (bx < comp.real_bw && by < comp.real_bh).then_some((bx, by));
        let q = &self.qt[comp.tq];
        // A constant k lets each size unroll fully.
        match r.k {
            1 => r.decode_block::<1>(bits, dc, ac, &mut comp.dc_pred, q, at),
            2 => r.decode_block::<2>(bits, dc, ac, &mut comp.dc_pred, q, at),
            _ => r.decode_block::<4>(bits, dc, ac, &mut comp.dc_pred, q, at),
        }
    }

    fn decode_progressive_block(&mut self, bits: &mut Bits<'_>, scan: &Scan, ci: usize, idx: usize) -> R<()> {
        let (dc_t, ac_t) = (self.comps[ci].dc_tbl, self.comps[ci].ac_tbl);
        let dc = self.dc[dc_t].as_ref();
        let ac = self.ac[ac_t].as_ref();
        let comp = &mut self.comps[ci];
        // Only a sequential frame discards a component (see read_sof).
        let Some(block) = comp.coefs.get_mut(idx) else {
            return bad("block out of range");
        };
        if scan.ss == 0 {
            // DC scans.
            if scan.ah == 0 {
                let Some(dc) = dc else {
                    return bad("missing Huffman table");
                };
                let s = bits.decode(dc);
                comp.dc_pred = comp.dc_pred.wrapping_add(bits.receive_extend(s));
                block[0] = (comp.dc_pred.wrapping_shl(scan.al)) as i16;
            } else if bits.bit() == 1 {
                block[0] |= (1i32 << scan.al) as i16;
            }
            return Ok(());
        }
        let Some(ac) = ac else {
            return bad("missing Huffman table");
        };
        if scan.ah == 0 {
            // AC first pass.
            if self.eobrun > 0 {
                self.eobrun -= 1;
                return Ok(());
            }
            let mut k = scan.ss;
            while k <= scan.se {
                let rs = bits.decode(ac);
                let (r, s) = (u32::from(rs >> 4), rs & 15);
                if s == 0 {
                    if r < 15 {
                        self.eobrun = (1u32 << r) - 1 + bits.bits(r);
                        break;
                    }
                    k += 16;
                    continue;
                }
                k += r as usize;
                if k > 63 {
                    return bad("AC index overflow");
                }
                block[ZIGZAG[k]] = (bits.receive_extend(s).wrapping_shl(scan.al)) as i16;
                k += 1;
            }
            return Ok(());
        }
        // AC refinement (ITU T.81 G.1.2.3, as libjpeg's decode_mcu_AC_refine).
        let p1 = (1i32 << scan.al) as i16;
        let m1 = (-1i32 << scan.al) as i16;
        let mut k = scan.ss;
        if self.eobrun == 0 {
            while k <= scan.se {
                let rs = bits.decode(ac);
                let (mut r, s) = (i32::from(rs >> 4), rs & 15);
                let mut val: i16 = 0;
                if s != 0 {
                    if s != 1 {
                        return bad("bad refinement symbol");
                    }
                    val = if bits.bit() == 1 { p1 } else { m1 };
                } else if r != 15 {
                    self.eobrun = (1u32 << r) + bits.bits(r as u32);
                    break;
                }
                while k <= scan.se {
                    let z = ZIGZAG[k];
                    if block[z] != 0 {
                        if bits.bit() == 1 && (block[z] & p1) == 0 {
                            block[z] =
                                if block[z] >= 0 { block[z].wrapping_add(p1) } else { block[z].wrapping_add(m1) };
                        }
                    } else {
                        if r == 0 {
                            if val != 0 {
                                block[z] = val;
                            }
                            k += 1;
                            break;
                        }
                        r -= 1;
                    }
                    k += 1;
                }
            }
        }
        if self.eobrun > 0 {
            while k <= scan.se {
                let z = ZIGZAG[k];
                if block[z] != 0 && bits.bit() == 1 && (block[z] & p1) == 0 {
                    block[z] = if block[z] >= 0 { block[z].wrapping_add(p1) } else { block[z].wrapping_add(m1) };
                }
                k += 1;
            }
            self.eobrun -= 1;
        }
        Ok(())
    }

    /// Skip entropy-coded bytes up to the next marker that is not RSTn; returns the marker.
    fn next_marker(&mut self) -> Option<u8> {
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF {
                let m = self.data[self.pos + 1];
                if m != 0 && m != 0xFF && !(0xD0..=0xD7).contains(&m) {
                    self.pos += 2;
                    return Some(m);
                }
            }
            self.pos += 1;
        }
        None
    }

    fn run(&mut self) -> R<()> {
        if self.data.len() < 4 || self.data[0] != 0xFF || self.data[1] != 0xD8 {
            return bad("not a JPEG");
        }
        self.pos = 2;
        let mut scans = 0usize;
        loop {
            let Some(m) = self.next_marker() else {
                // Missing EOI after at least one scan: libjpeg warns and carries on.
                return if scans > 0 { Ok(()) } else { bad("no image data") };
            };
            match m {
                0xD9 => {
                    return if scans > 0 { Ok(()) } else { bad("no image data") };
                }
                0xC0..=0xC2 => {
                    self.progressive = m == 0xC2;
                    let s = self.segment()?;
                    self.read_sof(s)?;
                    self.pos += s.len() + 2;
                }
                0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                    return Err(JpegFail::Unsupported);
                }
                0xC4 => {
                    let s = self.segment()?;
                    self.read_dht(s)?;
                    self.pos += s.len() + 2;
                }
                0xDB => {
                    let s = self.segment()?;
                    self.read_dqt(s)?;
                    self.pos += s.len() + 2;
                }
                0xDD => {
                    let s = self.segment()?;
                    self.restart_interval = u16_at(s, 0)?;
                    self.pos += s.len() + 2;
                }
                0xDA => {
                    let s = self.segment()?;
                    let scan = self.read_sos(s)?;
                    self.pos += s.len() + 2;
                    scans += 1;
                    if scans > 1000 {
                        return bad("too many scans");
                    }
                    self.decode_scan(&scan)?;
                }
                0xE0 => {
                    let s = self.segment()?;
                    if s.starts_with(b"JFIF\0") {
                        self.jfif = true;
                    }
                    self.pos += s.len() + 2;
                }
                0xEE => {
                    let s = self.segment()?;
                    if s.len() >= 12 && s.starts_with(b"Adobe") {
                        self.adobe_transform = Some(s[11]);
                    }
                    self.pos += s.len() + 2;
                }
                0xDC => return Err(JpegFail::Unsupported), // DNL
                0x01 => {}
                _ => {
                    let s = self.segment()?;
                    self.pos += s.len() + 2;
                }
            }
        }
    }
}

/// One block of a sequential scan, handing `put` each coefficient that is present (zigzag
/// index, value) in zigzag order; all others are zero. A discarded component's `put` does
/// nothing, so only the bits are consumed and the DC predictor kept.
#[inline(always)]
fn decode_sequential(
    bits: &mut Bits<'_>,
    dc: &Huff,
    ac: &Huff,
    dc_pred: &mut i32,
    mut put: impl FnMut(usize, i16),
) -> R<()> {
    // The bit buffer lives in locals here and goes back to `bits` only around a refill or
    // the general path: kept in the struct (behind `&mut`, across a call), every symbol paid
    // a store and reload in its dependency chain.
    let (mut buf, mut count) = (bits.buf, bits.count);
    if count < 32 {
        (bits.buf, bits.count) = (buf, count);
        bits.fill();
        (buf, count) = (bits.buf, bits.count);
    }
    let e = dc.combined[(buf >> (64 - COMBINED_LOOKAHEAD)) as usize];
    let diff = if e != 0 {
        let n = (e & 0xFF) as u32;
        buf <<= n;
        count -= n;
        e >> 16
    } else {
        (bits.buf, bits.count) = (buf, count);
        let s = bits.decode(dc);
        let v = bits.receive_extend(s);
        (buf, count) = (bits.buf, bits.count);
        v
    };
    *dc_pred = dc_pred.wrapping_add(diff);
    put(0, *dc_pred as i16);
    let mut k = 1;
    while k < 64 {
        if count < 32 {
            (bits.buf, bits.count) = (buf, count);
            bits.fill();
            (buf, count) = (bits.buf, bits.count);
        }
        let e = ac.combined[(buf >> (64 - COMBINED_LOOKAHEAD)) as usize];
        if e != 0 {
            // Code and extra bits resolved by one lookup (same bits, same result).
            let n = (e & 0xFF) as u32;
            buf <<= n;
            count -= n;
            let run = (e >> 8) & 0xFF;
            k += run as usize;
            if k > 63 {
                if run == EOB_RUN {
                    break;
                }
                return bad("AC index overflow");
            }
            put(k, (e >> 16) as i16);
            k += 1;
            continue;
        }
        (bits.buf, bits.count) = (buf, count);
        let rs = bits.decode(ac);
        let (r, s) = (usize::from(rs >> 4), rs & 15);
        if s == 0 {
            (buf, count) = (bits.buf, bits.count);
            if r != 15 {
                break;
            }
            k += 16;
            continue;
        }
        k += r;
        if k > 63 {
            return bad("AC index overflow");
        }
        put(k, bits.receive_extend(s) as i16);
        (buf, count) = (bits.buf, bits.count);
        k += 1;
    }
    (bits.buf, bits.count) = (buf, count);
    Ok(())
}

// ---- jidctint.c (the IJG "LL&M" accurate integer IDCT), CONST_BITS 13, PASS1_BITS 2 ----

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

#[inline]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit: the low 10 bits as a signed value, plus 128, clamped.
#[inline]
fn range_limit(x: i64) -> u8 {
    let v = ((x & 0x3FF) ^ 0x200) - 0x200;
    (v + 128).clamp(0, 255) as u8
}

/// One 1-D LL&M butterfly over `v[0..8]` (already dequantised), returning the 8 outputs
/// before descaling, exactly as both passes of `jpeg_idct_islow` form them.
#[inline]
fn llm(v: [i64; 8]) -> [i64; 8] {
    let (z2, z3) = (v[2], v[6]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (v[0] + v[4]) << CONST_BITS;
    let tmp1 = (v[0] - v[4]) << CONST_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);

    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * FIX_1_175875602;
    let t0 = t0 * FIX_0_298631336;
    let t1 = t1 * FIX_2_053119869;
    let t2 = t2 * FIX_3_072711026;
    let t3 = t3 * FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    let (t0, t1, t2, t3) = (t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4);
    [tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3]
}

fn idct_islow(coef: &[i16; 64], q: &[u16; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i32; 64];
    for col in 0..8 {
        // DEQUANTIZE multiplies two `short`s in `int`.
        let v: [i64; 8] = std::array::from_fn(|r| {
            i64::from(i32::from(coef[r * 8 + col]).wrapping_mul(i32::from(q[r * 8 + col] as i16)))
        });
        let o = llm(v);
        for r in 0..8 {
            // The workspace is `int`; the C cast truncates.
            ws[r * 8 + col] = descale(o[r], CONST_BITS - PASS1_BITS) as i32;
        }
    }
    for row in 0..8 {
        let v: [i64; 8] = std::array::from_fn(|c| i64::from(ws[row * 8 + c]));
        let o = llm(v);
        let dst = &mut out[row * stride..row * stride + 8];
        for c in 0..8 {
            dst[c] = range_limit(descale(o[c], CONST_BITS + PASS1_BITS + 3));
        }
    }
}

/// A component's samples after the IDCT: `bw*8` wide, `bh*8` tall.
struct Plane {
    w: usize,
    data: Vec<u8>,
}

fn idct_component(c: &Comp, q: &[u16; 64]) -> Plane {
    let w = c.bw * 8;
    let mut data = vec![0u8; w * c.bh * 8];
    // Only the blocks that cover the component are ever looked at.
    for by in 0..c.real_bh.min(c.bh) {
        for bx in 0..c.real_bw.min(c.bw) {
            let off = by * 8 * w + bx * 8;
            idct_islow(&c.coefs[by * c.bw + bx], q, &mut data[off..], w);
        }
    }
    Plane { w, data }
}

/// Upsample a component to full size with libjpeg-turbo's choice of method (`jdsample.c`):
/// fancy h2v1 / h1v2 / h2v2 where they apply, pixel replication otherwise.
fn upsample(c: &Comp, p: &Plane, hmax: usize, vmax: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let (hf, vf) = (hmax / c.h, vmax / c.v);
    let (dw, dh) = (c.dw, c.dh);
    let at = |x: usize, y: usize| -> i32 { i32::from(p.data[y * p.w + x]) };
    let mut out = vec![0u8; out_w * out_h];
    let fancy_h = dw > 2; // `do_fancy && downsampled_width > 2`
    if hf == 1 && vf == 1 {
        for y in 0..out_h {
            out[y * out_w..(y + 1) * out_w].copy_from_slice(&p.data[y * p.w..y * p.w + out_w]);
        }
    } else if hf == 2 && vf == 1 && fancy_h {
        let mut row = vec![0u8; dw * 2];
        for y in 0..out_h {
            let x0 = at(0, y);
            row[0] = x0 as u8;
            row[1] = ((x0 * 3 + at(1, y) + 2) >> 2) as u8;
            for x in 1..dw - 1 {
                let v = at(x, y) * 3;
                row[2 * x] = ((v + at(x - 1, y) + 1) >> 2) as u8;
                row[2 * x + 1] = ((v + at(x + 1, y) + 2) >> 2) as u8;
            }
            let xl = at(dw - 1, y);
            row[2 * dw - 2] = ((xl * 3 + at(dw - 2, y) + 1) >> 2) as u8;
            row[2 * dw - 1] = xl as u8;
            out[y * out_w..(y + 1) * out_w].copy_from_slice(&row[..out_w]);
        }
    } else if hf == 1 && vf == 2 {
        // h1v2 fancy (libjpeg-turbo 2.0+): always used when fancy upsampling is on.
        for y in 0..out_h {
            let iy = y / 2;
            let (ny, bias) = if y % 2 == 0 { (iy.saturating_sub(1), 1) } else { ((iy + 1).min(dh - 1), 2) };
            for x in 0..out_w {
                out[y * out_w + x] = ((at(x, iy) * 3 + at(x, ny) + bias) >> 2) as u8;
            }
        }
    } else if hf == 2 && vf == 2 && fancy_h {
        let mut row = vec![0u8; dw * 2];
        for y in 0..out_h {
            let iy = y / 2;
            // Nearer row, then the next nearer (above for even outputs); edges replicate.
            let ny = if y % 2 == 0 { iy.saturating_sub(1) } else { (iy + 1).min(dh - 1) };
            let colsum = |x: usize| at(x, iy) * 3 + at(x, ny);
            let mut this = colsum(0);
            let mut next = colsum(1);
            row[0] = ((this * 4 + 8) >> 4) as u8;
            row[1] = ((this * 3 + next + 7) >> 4) as u8;
            let mut last = this;
            this = next;
            for x in 1..dw - 1 {
                next = colsum(x + 1);
                row[2 * x] = ((this * 3 + last + 8) >> 4) as u8;
                row[2 * x + 1] = ((this * 3 + next + 7) >> 4) as u8;
                last = this;
                this = next;
            }
            row[2 * dw - 2] = ((this * 3 + last + 8) >> 4) as u8;
            row[2 * dw - 1] = ((this * 4 + 7) >> 4) as u8;
            out[y * out_w..(y + 1) * out_w].copy_from_slice(&row[..out_w]);
        }
    } else {
        // int_upsample / h2v1_upsample / h2v2_upsample: replicate.
        for y in 0..out_h {
            for x in 0..out_w {
                out[y * out_w + x] = p.data[(y / vf) * p.w + x / hf];
            }
        }
    }
    out
}

/// `jdcolor.c` YCbCr→RGB with its 16-bit fixed-point tables.
fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    const SCALEBITS: i64 = 16;
    const ONE_HALF: i64 = 1 << (SCALEBITS - 1);
    let fix = |x: f64| (x * (1i64 << SCALEBITS) as f64 + 0.5) as i64;
    let mut cr_r = [0i32; 256];
    let mut cb_b = [0i32; 256];
    let mut cr_g = [0i64; 256];
    let mut cb_g = [0i64; 256];
    for i in 0..256 {
        let x = i as i64 - 128;
        cr_r[i] = ((fix(1.40200) * x + ONE_HALF) >> SCALEBITS) as i32;
        cb_b[i] = ((fix(1.77200) * x + ONE_HALF) >> SCALEBITS) as i32;
        cr_g[i] = -fix(0.71414) * x;
        cb_g[i] = -fix(0.34414) * x + ONE_HALF;
    }
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        let (yy, b, r) = (i32::from(y[i]), usize::from(cb[i]), usize::from(cr[i]));
        px[0] = clamp(yy + cr_r[r]);
        px[1] = clamp(yy + ((cb_g[b] + cr_g[r]) >> SCALEBITS) as i32);
        px[2] = clamp(yy + cb_b[b]);
    }
}

/// Parse and entropy-decode every scan, leaving the quantised coefficients in the components.
fn parse(data: &[u8]) -> Result<Decoder<'_>, JpegFail> {
    parse_reducing(data, None)
}

/// [`parse`] for `pdq-fast-v1` when `reduce_to` is set: a sequential frame keeps no chroma
/// coefficients (the reduced luma needs none), and a luma larger than `reduce_to` is reduced
/// into [`Decoder::reduced`] block by block as it is decoded, keeping no luma coefficients
/// either.
fn parse_reducing(data: &[u8], reduce_to: Option<usize>) -> Result<Decoder<'_>, JpegFail> {
    let mut d = Decoder {
        data,
        pos: 0,
        qt: [[0; 64]; 4],
        dc: Default::default(),
        ac: Default::default(),
        comps: Vec::new(),
        width: 0,
        height: 0,
        hmax: 1,
        vmax: 1,
        mcux: 0,
        mcuy: 0,
        progressive: false,
        restart_interval: 0,
        eobrun: 0,
        jfif: false,
        adobe_transform: None,
        frame_seen: false,
        reduce_to,
        reduced: None,
    };
    d.run()?;
    if !d.frame_seen {
        return bad("no frame");
    }
    Ok(d)
}

/// libjpeg's default_decompress_parms colour-space guess for three components.
fn is_rgb(d: &Decoder<'_>) -> bool {
    let ids: Vec<u8> = d.comps.iter().map(|c| c.id).collect();
    if d.jfif {
        false
    } else if let Some(t) = d.adobe_transform {
        t == 0
    } else {
        ids == [b'R', b'G', b'B']
    }
}

/// Decode a JPEG to libjpeg-turbo's default pixels (see the module docs).
pub(crate) fn decode(data: &[u8]) -> Result<Decoded, JpegFail> {
    let d = parse(data)?;
    let (w, h) = (d.width, d.height);
    let planes: Vec<Vec<u8>> = d
        .comps
        .iter()
        .map(|c| {
            let p = idct_component(c, &d.qt[c.tq]);
            upsample(c, &p, d.hmax, d.vmax, w, h)
        })
        .collect();
    if planes.len() == 1 {
        return Ok(Decoded { width: w, height: h, channels: 1, pixels: planes.into_iter().next().unwrap_or_default() });
    }
    let mut pixels = vec![0u8; w * h * 3];
    if is_rgb(&d) {
        for (i, px) in pixels.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&[planes[0][i], planes[1][i], planes[2][i]]);
        }
    } else {
        ycc_to_rgb(&planes[0], &planes[1], &planes[2], &mut pixels);
    }
    Ok(Decoded { width: w, height: h, channels: 3, pixels })
}

/// A reduced luma plane for `pdq-fast-v1`.
pub(crate) struct ReducedLuma {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) data: Vec<f32>,
}

/// `pdq-fast-v1`'s JPEG path: the Y (or grey) component, area-averaged to 1/2, 1/4 or 1/8
/// scale directly from the DCT coefficients, choosing the mildest scale whose long side fits
/// `max_side`. JFIF's Y is exactly `0.299 R + 0.587 G + 0.114 B` (before rounding and
/// clamping), PDQ's own luma, so chroma is entropy-decoded (it must be, to stay in step)
/// but never reconstructed, and no IDCT, upsampling or colour conversion runs.
///
/// Each output sample is the exact mean of the real-valued IDCT over its (8/k)² pixels:
/// the mean of each cosine basis function over a segment is precomputed, so one block's
/// k×k outputs cost a k×8 and a k×k×8 matrix product. Returns `None` when the image already
/// fits (the caller decodes it canonically) or is RGB-coded (Adobe transform 0).
pub(crate) fn decode_luma_reduced(data: &[u8], max_side: usize) -> Result<Option<ReducedLuma>, JpegFail> {
    let d = parse_reducing(data, Some(max_side))?;
    if d.comps.len() == 3 && is_rgb(&d) {
        return Ok(None);
    }
    let c = &d.comps[0];
    // A sequential frame was reduced while it was decoded; a progressive one is reduced now
    // from its kept coefficients, block by block in the same arithmetic.
    let reduction = match d.reduced {
        Some(r) => r,
        None => {
            let Some(mut r) = Reduction::for_component(c, max_side) else {
                return Ok(None);
            };
            let q = &d.qt[c.tq];
            for by in 0..c.real_bh.min(c.bh) {
                for bx in 0..c.real_bw.min(c.bw) {
                    r.add_block(bx, by, &c.coefs[by * c.bw + bx], q);
                }
            }
            r
        }
    };
    let Reduction { k, pw, ph, plane, .. } = reduction;
    let (ow, oh) = ((c.dw * k).div_ceil(8).min(pw), (c.dh * k).div_ceil(8).min(ph));
    let mut data = Vec::with_capacity(ow * oh);
    for y in 0..oh {
        data.extend_from_slice(&plane[y * pw..y * pw + ow]);
    }
    Ok(Some(ReducedLuma { width: ow, height: oh, data }))
}

/// A luma plane being area-averaged to 1/2, 1/4 or 1/8 scale from DCT coefficients, one block
/// at a time (see [`decode_luma_reduced`]).
struct Reduction {
    /// Output samples per block side.
    k: usize,
    /// basis[t][u]: mean over output segment t of C(u)/2 · cos((2x+1)uπ/16).
    basis: [[f32; 8]; 4],
    pw: usize,
    ph: usize,
    plane: Vec<f32>,
}

impl Reduction {
    /// The mildest scale whose long side fits `max_side`; `None` when the component already
    /// fits (it is then decoded canonically).
    fn for_component(c: &Comp, max_side: usize) -> Option<Reduction> {
        let long = c.dw.max(c.dh);
        if long <= max_side {
            return None;
        }
        let k = [4usize, 2].into_iter().find(|&k| (long * k).div_ceil(8) <= max_side).unwrap_or(1);
        let seg = 8 / k;
        let mut basis = [[0.0f32; 8]; 4];
        for (t, row) in basis.iter_mut().enumerate().take(k) {
            for (u, b) in row.iter_mut().enumerate() {
                let cu = if u == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
                let sum: f64 = (t * seg..(t + 1) * seg)
                    .map(|x| cu / 2.0 * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
                    .sum();
                *b = (sum / seg as f64) as f32;
            }
        }
        let (pw, ph) = (c.real_bw * k, c.real_bh * k);
        Some(Reduction {
            k,
            basis,
            pw,
            ph,
            // 128.0 is what an all-zero block reduces to: a block a truncated scan never
            // reaches reads as it would from zeroed coefficients.
            plane: vec![128.0f32; pw * ph],
        })
    }

    /// Each output sample of block (bx, by) is the exact mean of the real-valued IDCT over its
    /// (8/k)² pixels: a k×8 and a k×k×8 matrix product. All-zero coefficient rows (most
    /// high-frequency rows after quantisation) add nothing and are skipped.
    #[inline]
    fn add_block(&mut self, bx: usize, by: usize, coef: &[i16; 64], q: &[u16; 64]) {
        // A constant k lets each size unroll fully.
        match self.k {
            1 => self.add_block_k::<1>(bx, by, coef, q),
            2 => self.add_block_k::<2>(bx, by, coef, q),
            _ => self.add_block_k::<4>(bx, by, coef, q),
        }
    }

    #[inline(always)]
    fn add_block_k<const K: usize>(&mut self, bx: usize, by: usize, coef: &[i16; 64], q: &[u16; 64]) {
        // part[t][col] = Σ_r basis[t][r] · F[r][col], r ascending. Adding an all-zero row's
        // ±0 products would change nothing: a sum of finite floats is never −0.
        let mut part = [[0.0f32; 8]; K];
        let mut left = nonzero_rows(coef);
        while left != 0 {
            let r = left.trailing_zeros() as usize;
            left &= left - 1;
            let f: [f32; 8] = std::array::from_fn(|col| {
                let i = r * 8 + col;
                i32::from(coef[i]).wrapping_mul(i32::from(q[i] as i16)) as f32
            });
            for (t, pt) in part.iter_mut().enumerate() {
                let b = self.basis[t][r];
                for col in 0..8 {
                    pt[col] += b * f[col];
                }
            }
        }
        self.finish_block(bx, by, &part);
    }

    /// Decode one block of the reduced component and reduce it as it is decoded, with no
    /// coefficient block in between: each coefficient's products are added to `part` as it
    /// arrives. Within a column zigzag order visits rows in ascending order, so every
    /// part[t][col] takes the same terms in the same order as in [`Reduction::add_block`],
    /// less the ±0 products of absent coefficients, which change nothing. `at`: the block's
    /// place, `None` for a block outside the image (decoded only to stay in step).
    #[inline(always)]
    fn decode_block<const K: usize>(
        &mut self,
        bits: &mut Bits<'_>,
        dc: &Huff,
        ac: &Huff,
        dc_pred: &mut i32,
        q: &[u16; 64],
        at: Option<(usize, usize)>,
    ) -> R<()> {
        let mut part = [[0.0f32; 8]; K];
        let basis = &self.basis;
        decode_sequential(bits, dc, ac, dc_pred, |k, v| {
            // Every entry is below 64 already; the mask lets the indexing below go unchecked.
            let z = ZIGZAG[k] & 63;
            let (r, col) = (z >> 3, z & 7);
            let f = i32::from(v).wrapping_mul(i32::from(q[z] as i16)) as f32;
            for (t, pt) in part.iter_mut().enumerate() {
                pt[col] += basis[t][r] * f;
            }
        })?;
        if let Some((bx, by)) = at {
            self.finish_block(bx, by, &part);
        }
        Ok(())
    }

    /// Block (bx, by)'s output samples from its column sums `part`.
    #[inline(always)]
    fn finish_block<const K: usize>(&mut self, bx: usize, by: usize, part: &[[f32; 8]; K]) {
        // out[t][s] = Σ_col part[t][col] · basis[s][col], col ascending, the K² sums
        // interleaved so they overlap. Starting from +0 where `Sum` starts from −0 can change
        // only the sign of a zero total, which adding 128 erases.
        let mut out = [[0.0f32; K]; K];
        // Indexed loops: the outer one is the summation order, which must stay col-major.
        #[allow(clippy::needless_range_loop)]
        for col in 0..8 {
            for t in 0..K {
                for s in 0..K {
                    out[t][s] += part[t][col] * self.basis[s][col];
                }
            }
        }
        for (t, ot) in out.iter().enumerate() {
            let at = (by * K + t) * self.pw + bx * K;
            for (p, v) in self.plane[at..at + K].iter_mut().zip(ot) {
                *p = v + 128.0;
            }
        }
    }
}

/// Bit r set when coefficient row r holds a non-zero value.
fn nonzero_rows(coef: &[i16; 64]) -> u8 {
    (0..8).fold(0, |m, r| if coef[r * 8..r * 8 + 8].iter().any(|&x| x != 0) { m | 1 << r } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reduction done block by block while decoding equals the one done afterwards from
    /// kept coefficients (the progressive path), bit for bit.
    fn reduce_after_decoding(data: &[u8], max_side: usize) -> Option<(usize, usize, Vec<f32>)> {
        let d = parse(data).unwrap();
        let c = &d.comps[0];
        let mut r = Reduction::for_component(c, max_side)?;
        for by in 0..c.real_bh.min(c.bh) {
            for bx in 0..c.real_bw.min(c.bw) {
                r.add_block(bx, by, &c.coefs[by * c.bw + bx], &d.qt[c.tq]);
            }
        }
        let (ow, oh) = ((c.dw * r.k).div_ceil(8).min(r.pw), (c.dh * r.k).div_ceil(8).min(r.ph));
        let data = (0..oh).flat_map(|y| r.plane[y * r.pw..y * r.pw + ow].to_vec()).collect();
        Some((ow, oh, data))
    }

    #[test]
    fn streaming_reduction_equals_reduction_from_kept_coefficients() {
        // Sizes that need each scale and leave partial blocks and MCUs; textured content so
        // blocks carry high-frequency coefficients.
        for (w, h, quality) in [(1920, 1080, 90), (1001, 517, 75), (2100, 300, 60), (600, 4000, 95), (4100, 30, 85)] {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let v = (x * 7 + y * 13 + (x * y) % 31) as u8;
                image::Rgb([v, v.wrapping_mul(3), (x ^ y) as u8])
            });
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality).encode_image(&img).unwrap();
            let streamed = decode_luma_reduced(&jpeg, 512).unwrap().expect("larger than 512");
            let (ow, oh, want) = reduce_after_decoding(&jpeg, 512).unwrap();
            assert_eq!((streamed.width, streamed.height), (ow, oh), "{w}x{h}");
            assert!(
                streamed.data.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{w}x{h} q{quality}: planes differ"
            );
        }
    }
}
