//! Synthetic plates: the text space, the regions, and the rendered plate.

use rand::Rng;

use crate::raster::{Canvas, Rgb, shade};

/// Every synthetic plate starts with this prefix, followed by five characters from `[A-Z0-9]`.
///
/// Custodia treats `QZ·····` as its synthetic plate space: demo data, canary records and tests
/// draw from it, so a plate seen in a real dump that falls outside it can never have come from
/// here. It is a convention of this project, not a promise that no jurisdiction has ever issued
/// such a plate.
pub const SYNTHETIC_PREFIX: &str = "QZ";

/// Length of every synthetic plate text (prefix included).
pub const PLATE_LEN: usize = 7;

/// Whether `text` lies in the synthetic plate space: `QZ` followed by five of `[A-Z0-9]`,
/// compared case-insensitively (Plate Recognizer reports plates in lower case).
///
/// Misread candidates stay in the space too: OCR confusions are only ever applied after the
/// prefix.
pub fn is_synthetic_plate(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == PLATE_LEN
        && b[..2].eq_ignore_ascii_case(SYNTHETIC_PREFIX.as_bytes())
        && b[2..].iter().all(|c| c.is_ascii_alphanumeric())
}

/// The issuing region of a plate, spelled as the ALPR engines spell it (`us-tx`, `mx-tam`).
///
/// The set is the one a south Texas land port sees most: Texas and its neighbours, and the
/// Mexican border states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Region {
    /// Texas.
    UsTx,
    /// New Mexico.
    UsNm,
    /// Arizona.
    UsAz,
    /// California.
    UsCa,
    /// Tamaulipas.
    MxTam,
    /// Nuevo León.
    MxNle,
    /// Coahuila.
    MxCoa,
    /// Chihuahua.
    MxChh,
}

impl Region {
    /// All regions, in declaration order.
    pub const ALL: [Region; 8] = [
        Region::UsTx,
        Region::UsNm,
        Region::UsAz,
        Region::UsCa,
        Region::MxTam,
        Region::MxNle,
        Region::MxCoa,
        Region::MxChh,
    ];

    /// The engine region code: `"us-tx"`, `"mx-tam"`, …
    pub fn code(self) -> &'static str {
        match self {
            Region::UsTx => "us-tx",
            Region::UsNm => "us-nm",
            Region::UsAz => "us-az",
            Region::UsCa => "us-ca",
            Region::MxTam => "mx-tam",
            Region::MxNle => "mx-nle",
            Region::MxCoa => "mx-coa",
            Region::MxChh => "mx-chh",
        }
    }

    /// The country part of the code: `"us"` or `"mx"`.
    pub fn country(self) -> &'static str {
        &self.code()[..2]
    }

    /// The subdivision part of the code: `"tx"`, `"tam"`, … (what OpenALPR 1.x reported).
    pub fn subdivision(self) -> &'static str {
        &self.code()[3..]
    }

    /// The name printed on the plate's banner.
    pub fn banner(self) -> &'static str {
        match self {
            Region::UsTx => "TEXAS",
            Region::UsNm => "NEW MEXICO",
            Region::UsAz => "ARIZONA",
            Region::UsCa => "CALIFORNIA",
            Region::MxTam => "TAMAULIPAS",
            Region::MxNle => "NUEVO LEON",
            Region::MxCoa => "COAHUILA",
            Region::MxChh => "CHIHUAHUA",
        }
    }

    /// Parses an engine region code (case-insensitive).
    pub fn from_code(code: &str) -> Option<Region> {
        Region::ALL.into_iter().find(|r| r.code().eq_ignore_ascii_case(code))
    }

    /// Draws a region with the mix a south Texas port sees (mostly Texas and Tamaulipas).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Region {
        // Percent weights, in ALL order.
        const WEIGHTS: [u32; 8] = [46, 3, 3, 2, 30, 10, 3, 3];
        let mut x = rng.gen_range(0..WEIGHTS.iter().sum::<u32>());
        for (r, w) in Region::ALL.into_iter().zip(WEIGHTS) {
            if x < w {
                return r;
            }
            x -= w;
        }
        Region::UsTx
    }

    fn is_mexican(self) -> bool {
        self.country() == "mx"
    }
}

/// A synthetic licence plate: its text (in the synthetic space) and its region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Plate {
    text: String,
    region: Region,
}

impl Plate {
    /// A random plate in a region drawn by [`Region::random`].
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Plate {
        let region = Region::random(rng);
        Plate::random_in(region, rng)
    }

    /// A random plate in `region`. US layout: `QZ` + letter + 4 digits (`QZK4821`); Mexican
    /// layout: `QZ` + letter + 3 digits + letter (`QZK482B`), after the `ABC-123-D` series.
    pub fn random_in<R: Rng + ?Sized>(region: Region, rng: &mut R) -> Plate {
        let letter = |rng: &mut R| (b'A' + rng.gen_range(0..26u8)) as char;
        let digit = |rng: &mut R| (b'0' + rng.gen_range(0..10u8)) as char;
        let mut text = String::with_capacity(PLATE_LEN);
        text.push_str(SYNTHETIC_PREFIX);
        text.push(letter(rng));
        for _ in 0..3 {
            text.push(digit(rng));
        }
        if region.is_mexican() {
            text.push(letter(rng));
        } else {
            text.push(digit(rng));
        }
        Plate { text, region }
    }

    /// Plate number `serial` of `region`'s series, after a fixed shuffle so consecutive serials
    /// do not look consecutive. Every US region shares one series of 260,000 texts and every
    /// Mexican region one of 676,000, so serials below 260,000 give distinct texts everywhere.
    pub(crate) fn from_serial(region: Region, serial: u64) -> Plate {
        // An affine map x -> (a·x + b) mod n is a bijection when gcd(a, n) = 1; 104729 is a
        // prime that divides neither 260000 = 2⁵·5⁴·13 nor 676000 = 2⁵·5³·13².
        const A: u64 = 104_729;
        const B: u64 = 7_919;
        let mexican = region.is_mexican();
        let n: u64 = if mexican { 26 * 1000 * 26 } else { 26 * 10_000 };
        let x = ((serial % n) * A + B) % n;
        let l = |i: u64| (b'A' + i as u8) as char;
        let text = if mexican {
            format!("{SYNTHETIC_PREFIX}{}{:03}{}", l(x / 26_000), x / 26 % 1000, l(x % 26))
        } else {
            format!("{SYNTHETIC_PREFIX}{}{:04}", l(x / 10_000), x % 10_000)
        };
        Plate { text, region }
    }

    /// Builds a plate from existing text; `None` unless the text is in the synthetic space.
    pub fn new(text: &str, region: Region) -> Option<Plate> {
        is_synthetic_plate(text).then(|| Plate { text: text.to_ascii_uppercase(), region })
    }

    /// The plate text as an engine reads it: upper case, no separators.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The issuing region.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Whether `text` has this region's layout (what OpenALPR calls matching the template).
    pub fn matches_layout(region: Region, text: &str) -> bool {
        let b = text.as_bytes();
        if !is_synthetic_plate(text) || !b[2].is_ascii_alphabetic() {
            return false;
        }
        let digits = b[3..6].iter().all(u8::is_ascii_digit);
        if region.is_mexican() { digits && b[6].is_ascii_alphabetic() } else { digits && b[6].is_ascii_digit() }
    }

    /// The text as printed on the plate, with the region's separators.
    pub fn printed(&self) -> String {
        let t = &self.text;
        match self.region {
            Region::UsTx => format!("{} {}", &t[..3], &t[3..]),
            Region::UsNm => format!("{}-{}", &t[..3], &t[3..]),
            Region::UsAz | Region::UsCa => t.clone(),
            _ => format!("{}-{}-{}", &t[..3], &t[3..6], &t[6..]),
        }
    }
}

/// OCR confusions an ALPR engine makes, both ways round.
pub(crate) const CONFUSIONS: [(u8, u8); 8] =
    [(b'O', b'0'), (b'B', b'8'), (b'I', b'1'), (b'S', b'5'), (b'Z', b'2'), (b'D', b'0'), (b'G', b'6'), (b'Q', b'0')];

/// The characters `c` is commonly misread as.
pub(crate) fn confusable(c: u8) -> impl Iterator<Item = u8> {
    CONFUSIONS.iter().filter_map(move |&(a, b)| {
        if a == c {
            Some(b)
        } else if b == c {
            Some(a)
        } else {
            None
        }
    })
}

/// Width and height of the canonical plate drawing (a US plate is 12 × 6 inches).
pub(crate) const PLATE_W: usize = 300;
pub(crate) const PLATE_H: usize = 150;

struct Style {
    bg_top: Rgb,
    bg_bottom: Rgb,
    ink: Rgb,
    banner_ink: Rgb,
    band: Option<Rgb>,
}

fn style(region: Region) -> Style {
    match region {
        Region::UsTx => Style {
            bg_top: [236, 236, 230],
            bg_bottom: [214, 218, 222],
            ink: [25, 25, 30],
            banner_ink: [30, 30, 40],
            band: None,
        },
        Region::UsNm => Style {
            bg_top: [252, 214, 40],
            bg_bottom: [240, 196, 20],
            ink: [180, 28, 30],
            banner_ink: [180, 28, 30],
            band: None,
        },
        Region::UsAz => Style {
            bg_top: [238, 222, 190],
            bg_bottom: [224, 170, 120],
            ink: [110, 30, 40],
            banner_ink: [40, 60, 110],
            band: None,
        },
        Region::UsCa => Style {
            bg_top: [244, 244, 244],
            bg_bottom: [228, 230, 234],
            ink: [22, 40, 120],
            banner_ink: [200, 30, 40],
            band: None,
        },
        Region::MxTam => Style {
            bg_top: [244, 244, 240],
            bg_bottom: [226, 226, 222],
            ink: [20, 20, 24],
            banner_ink: [240, 240, 240],
            band: Some([30, 90, 160]),
        },
        Region::MxNle => Style {
            bg_top: [244, 244, 240],
            bg_bottom: [226, 226, 222],
            ink: [20, 20, 24],
            banner_ink: [240, 240, 240],
            band: Some([170, 30, 40]),
        },
        Region::MxCoa => Style {
            bg_top: [244, 244, 240],
            bg_bottom: [226, 226, 222],
            ink: [20, 20, 24],
            banner_ink: [240, 240, 240],
            band: Some([30, 120, 70]),
        },
        Region::MxChh => Style {
            bg_top: [244, 244, 240],
            bg_bottom: [226, 226, 222],
            ink: [20, 20, 24],
            banner_ink: [240, 240, 240],
            band: Some([130, 80, 40]),
        },
    }
}

/// Draws the plate face-on at `PLATE_W`×`PLATE_H`. `dirt` in 0..=256 smears mud over it
/// (an obscured plate the engine cannot read).
pub(crate) fn draw_plate<R: Rng + ?Sized>(plate: &Plate, dirt: u32, rng: &mut R) -> Canvas {
    let s = style(plate.region);
    let (w, h) = (PLATE_W as i32, PLATE_H as i32);
    let mut c = Canvas::new(PLATE_W, PLATE_H, s.bg_top);
    c.gradient_v(0, h, s.bg_top, s.bg_bottom);
    // Banner.
    let banner = plate.region.banner();
    let bw = banner.len() as i32 * 6 * 3 - 3;
    if let Some(band) = s.band {
        c.fill_rect(0, 0, w, 30, band);
        c.text((w - bw) / 2, 5, 3, 3, banner, s.banner_ink);
        c.fill_rect(0, h - 22, w, h, band);
        c.text((w - (6 * 2 * 6 - 2)) / 2, h - 18, 2, 2, "MEXICO", s.banner_ink);
    } else {
        c.text((w - bw) / 2, 8, 3, 3, banner, s.banner_ink);
    }
    // Registration sticker in a corner, a different colour each year.
    let sticker = [[200, 40, 40], [40, 120, 200], [40, 160, 80], [230, 200, 40]][rng.gen_range(0..4)];
    c.fill_rect(w - 40, 6, w - 12, 24, sticker);
    // Characters.
    let printed = plate.printed();
    c.text_fit(18.0, 40.0, (w - 36) as f32, 76.0, &printed, s.ink);
    // Bolt holes and the frame.
    c.ellipse(70, 20, 5, 4, [90, 90, 90], 256);
    c.ellipse(w - 70, 20, 5, 4, [90, 90, 90], 256);
    c.frame_rect(0, 0, w, h, 4, shade(s.ink, 200));
    if dirt > 0 {
        let mud: Rgb = [96, 78, 52];
        for _ in 0..rng.gen_range(6..12) {
            let (cx, cy) = (rng.gen_range(10..w - 10), rng.gen_range(30..h - 10));
            let (rx, ry) = (rng.gen_range(18..60), rng.gen_range(10..30));
            c.ellipse(cx, cy, rx, ry, mud, dirt);
        }
    }
    c
}

/// Renders the plate-crop image as a lane's plate camera delivers it: the plate, slightly
/// rotated and skewed, on its strip of bumper, softened, noisy, graded for the light.
pub(crate) fn render_crop<R: Rng + ?Sized>(
    plate: &Plate,
    bumper: Rgb,
    light: [i32; 3],
    dirt: u32,
    rng: &mut R,
) -> Canvas {
    let face = draw_plate(plate, dirt, rng);
    let (w, h) = (PLATE_CROP_W as f32, PLATE_CROP_H as f32);
    let mut c = Canvas::new(PLATE_CROP_W, PLATE_CROP_H, bumper);
    c.gradient_v(0, PLATE_CROP_H as i32, shade(bumper, 300), shade(bumper, 170));
    // A bumper edge line and a shadow under the plate holder: texture the crop always has.
    let edge: i32 = rng.gen_range(8..30);
    c.fill_rect(0, edge, PLATE_CROP_W as i32, edge + 4, shade(bumper, 120));
    let pw = w * rng.gen_range(0.72..0.84);
    let ph = pw * 0.5;
    let cx = w / 2.0 + rng.gen_range(-0.05..0.05) * w;
    let cy = h / 2.0 + rng.gen_range(-0.05..0.05) * h;
    // Up to ±4° of roll and a little keystone from the camera's height.
    let roll: f32 = rng.gen_range(-0.07..0.07);
    let keystone = rng.gen_range(-0.04..0.06) * pw;
    let (sr, cr) = roll.sin_cos();
    let rot = |dx: f32, dy: f32| (cx + dx * cr - dy * sr, cy + dx * sr + dy * cr);
    let quad = [
        rot(-pw / 2.0 + keystone, -ph / 2.0),
        rot(pw / 2.0 - keystone, -ph / 2.0),
        rot(pw / 2.0, ph / 2.0),
        rot(-pw / 2.0, ph / 2.0),
    ];
    let holder = shade(bumper, 60);
    let grow = |p: (f32, f32)| (cx + (p.0 - cx) * 1.06, cy + (p.1 - cy) * 1.1);
    c.polygon(&quad.map(grow), holder, 256);
    c.warp_from(&face, quad);
    if rng.gen_bool(0.5) {
        c.blur3();
    }
    c.grade(light);
    // Specular glare from the plate light or the sun, sometimes.
    if rng.gen_bool(0.3) {
        let gx = rng.gen_range(0..PLATE_CROP_W as i32);
        c.ellipse(gx, rng.gen_range(20..60), rng.gen_range(20..60), rng.gen_range(8..20), [255, 255, 250], 70);
    }
    let amp = rng.gen_range(PLATE_NOISE.0..PLATE_NOISE.1);
    c.noise(rng.r#gen(), amp, 0, 0, PLATE_CROP_W as i32, PLATE_CROP_H as i32);
    c
}

/// Width of the plate-crop image. Chosen with the crop's noise and JPEG quality 88 so the JPEG
/// lands in 15–25 KB (median about 19 KB), the size of the plate crops lane cameras keep.
pub const PLATE_CROP_W: usize = 320;
/// Height of the plate-crop image.
pub const PLATE_CROP_H: usize = 160;
pub(crate) const PLATE_QUALITY: u8 = 88;
pub(crate) const PLATE_NOISE: (i32, i32) = (9, 11);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_plates_are_synthetic_and_match_their_layout() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let p = Plate::random(&mut rng);
            assert!(is_synthetic_plate(p.text()), "{}", p.text());
            assert!(Plate::matches_layout(p.region(), p.text()), "{} {:?}", p.text(), p.region());
        }
    }

    #[test]
    fn serials_give_distinct_plates_in_layout() {
        let mut seen = std::collections::HashSet::new();
        for serial in 0..260_000u64 {
            let region = if serial % 3 == 0 { Region::UsCa } else { Region::UsTx };
            let p = Plate::from_serial(region, serial);
            assert!(Plate::matches_layout(region, p.text()), "{}", p.text());
            assert!(seen.insert(p.text), "serial {serial} repeats a plate");
        }
        let mut seen = std::collections::HashSet::new();
        for serial in 0..676_000u64 {
            let p = Plate::from_serial(Region::MxTam, serial);
            assert!(Plate::matches_layout(Region::MxTam, p.text()), "{}", p.text());
            assert!(seen.insert(p.text), "serial {serial} repeats a plate");
        }
    }

    #[test]
    fn synthetic_space_rejects_other_text() {
        for t in ["ABC1234", "QZ12345X", "QZ1234", "QZ-1234", "QZ 1234", "qzk4821x"] {
            assert!(!is_synthetic_plate(t), "{t}");
        }
        assert!(is_synthetic_plate("qzk4821"));
    }

    #[test]
    fn region_codes_round_trip() {
        for r in Region::ALL {
            assert_eq!(Region::from_code(r.code()), Some(r));
            assert_eq!(format!("{}-{}", r.country(), r.subdivision()), r.code());
        }
    }
}
