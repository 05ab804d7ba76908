//! QR codes of `otpauth://` URIs as `data:image/png;base64,...` URIs.
//!
//! The `qrcode` crate encodes the data (segment optimisation, Reed-Solomon codewords) and lays
//! out the function patterns and data modules on its `Canvas`. Mask selection and rendering are
//! done here, because `QrCode::new` scores the eight mask patterns with a per-module scalar
//! loop (boxing a closure per finder-pattern probe) that took ~1.1 ms of the ~1.25 ms a QR PNG
//! used to cost. This module scores the same eight masks with the same penalty rules (ISO/IEC
//! 18004 §7.8.3 as the `qrcode` crate implements them, ties going to the lower pattern number)
//! on rows packed into `u64` bitsets, so the symbol is bit-for-bit the one `qrcode` would draw
//! — a test pins that — at a small fraction of the cost.
//!
//! The PNG is written directly as a 1-bit greyscale image with the `png` crate (no
//! image-processing stack): at 8 px per module one module is exactly one byte of a pixel row,
//! each module row is built once and copied 8 times, and the PNG "Up" filter turns the seven
//! repeated rows into zeros, which `png`'s fast (`fdeflate`) compressor squeezes to almost
//! nothing: a typical enrolment PNG is ~2.3 KB (the previous "Sub" filter gave ~7 KB) and
//! the whole render takes tens of microseconds. (zlib's default level would give ~1 KB but
//! costs ~0.5 ms, more than everything else together.)

use base64::Engine;
use qrcode::canvas::{Canvas, Module};
use qrcode::types::{Color, EcLevel};
use std::ops::{BitAnd, BitOr, BitXor, Not};

/// Pixels per QR module. 8 px gives a ~450 px image for a typical URI: large enough for a
/// phone camera at normal viewing size, small enough to stay crisp when scaled by a browser.
const SCALE: usize = 8;
/// The quiet zone the QR specification requires around the symbol, in modules.
const QUIET: usize = 4;
/// Error correction level M (15 % of codewords recoverable), as before.
const EC_LEVEL: EcLevel = EcLevel::M;

// The renderer writes each module as one whole byte of 1-bit pixels.
const _: () = assert!(SCALE == 8, "one module must be exactly one byte of pixels");

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("data does not fit in a QR code: {0}")]
    TooLong(String),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// Renders `data` as a QR code (error correction level M) in a PNG.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    Symbol::encode(data)?.to_png()
}

/// `data:image/png;base64,` + the PNG of [`png`].
pub fn png_data_uri(data: &str) -> Result<String, QrError> {
    let bytes = png(data)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// A finished (masked, format-stamped) QR symbol: `width` rows of `limbs` u64 words each, bit
/// `x % 64` of word `x / 64` set when module `(x, y)` is dark.
struct Symbol {
    width: usize,
    limbs: usize,
    bits: Vec<u64>,
}

impl Symbol {
    /// Encodes `data` at level M in the smallest QR version that holds it, with the mask
    /// pattern of lowest penalty.
    fn encode(data: &str) -> Result<Self, QrError> {
        let too_long = |e: qrcode::types::QrError| QrError::TooLong(e.to_string());
        // `encode_auto` considers only full-size QR versions (never Micro QR), 1 to 40.
        let bits = qrcode::bits::encode_auto(data.as_bytes(), EC_LEVEL).map_err(too_long)?;
        let version = bits.version();
        let (data_codewords, ec_codewords) =
            qrcode::ec::construct_codewords(&bits.into_bytes(), version, EC_LEVEL)
                .map_err(too_long)?;
        let mut canvas = Canvas::new(version, EC_LEVEL);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data_codewords, &ec_codewords);
        let width = version.width();
        // Monomorphised per row width so a typical symbol (version ≤ 11, ≤ 64 modules) works
        // on single words.
        Ok(match usize::try_from(width).unwrap_or(0).div_ceil(64) {
            0 | 1 => Self::masked::<1>(&canvas, width),
            2 => Self::masked::<2>(&canvas, width),
            _ => Self::masked::<3>(&canvas, width),
        })
    }

    fn masked<const N: usize>(canvas: &Canvas, width: i16) -> Self {
        let w = usize::try_from(width).unwrap_or(0);
        // Before masking: the colour of every module, and which modules the mask applies to
        // (data and error-correction modules; function patterns are already final).
        let mut fixed = vec![Row::<N>::ZERO; w];
        let mut maskable = vec![Row::<N>::ZERO; w];
        for (y, (f, m)) in (0..width).zip(fixed.iter_mut().zip(maskable.iter_mut())) {
            for (x, xu) in (0..width).zip(0usize..) {
                let (dark, masked) = match canvas.get(x, y) {
                    Module::Masked(c) => (c == Color::Dark, false),
                    Module::Unmasked(c) => (c == Color::Dark, true),
                    // Unreachable after `draw_data`, but `Module::mask` treats it as light data.
                    Module::Empty => (false, true),
                };
                f.set(xu, dark);
                m.set(xu, masked);
            }
        }
        let mut grid = vec![Row::<N>::ZERO; w];
        let mut best = (i64::MAX, 0);
        for pattern in 0..MASK_PATTERNS {
            apply_mask(&fixed, &maskable, pattern, &mut grid);
            let score = penalty(&grid, w);
            // Strictly lower: ties keep the lower pattern number, like `Iterator::min_by_key`.
            if score < best.0 {
                best = (score, pattern);
            }
        }
        apply_mask(&fixed, &maskable, best.1, &mut grid);
        Symbol {
            width: w,
            limbs: N,
            bits: grid.iter().flat_map(|r| r.0).collect(),
        }
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        self.bits[y * self.limbs + x / 64] >> (x % 64) & 1 == 1
    }

    /// The modules as `qrcode::QrCode::to_colors` lists them (row-major), for tests.
    #[cfg(test)]
    fn colors(&self) -> Vec<Color> {
        (0..self.width)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .map(|(x, y)| {
                if self.is_dark(x, y) {
                    Color::Dark
                } else {
                    Color::Light
                }
            })
            .collect()
    }

    /// A 1-bit greyscale PNG, `SCALE` pixels per module, with a `QUIET`-module white border.
    fn to_png(&self) -> Result<Vec<u8>, QrError> {
        let png_err = |e: png::EncodingError| QrError::Png(e.to_string());
        // One byte per module (SCALE == 8), bits MSB first; a set bit is white (grey level 1).
        let row_bytes = self.width + 2 * QUIET;
        let side = row_bytes * SCALE;
        let mut pixels = vec![0xffu8; row_bytes * side];
        let band = row_bytes * SCALE;
        for (y, rows) in pixels
            .chunks_exact_mut(band)
            .skip(QUIET)
            .take(self.width)
            .enumerate()
        {
            let (first, copies) = rows.split_at_mut(row_bytes);
            for (x, px) in first[QUIET..QUIET + self.width].iter_mut().enumerate() {
                if self.is_dark(x, y) {
                    *px = 0;
                }
            }
            for copy in copies.chunks_exact_mut(row_bytes) {
                copy.copy_from_slice(first);
            }
        }
        let side32 = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
        let mut out = Vec::with_capacity(4096);
        {
            let mut enc = png::Encoder::new(&mut out, side32, side32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::One);
            enc.set_compression(png::Compression::Fast);
            // "Up" makes every repeated pixel row all zeros: 7 of 8 rows compress to nothing.
            enc.set_filter(png::FilterType::Up);
            let mut w = enc.write_header().map_err(png_err)?;
            w.write_image_data(&pixels).map_err(png_err)?;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Masking

const MASK_PATTERNS: usize = 8;
/// Every mask pattern repeats every 12 rows (lcm of the periods 2, 3, 4 and 6).
const MASK_PERIOD: usize = 12;
/// Version 40 is 177 modules wide: three words.
const MAX_LIMBS: usize = 3;

/// Mask pattern `pattern` (ISO/IEC 18004 Table 10, numbered as in the format information):
/// whether module `(x, y)` (column, row) is inverted. Written as in the standard (and as
/// `% n == 0`: `is_multiple_of` needs Rust 1.87, the workspace's MSRV is 1.80).
#[allow(clippy::manual_is_multiple_of)]
const fn mask_bit(pattern: usize, x: usize, y: usize) -> bool {
    match pattern {
        0 => (x + y) % 2 == 0,
        1 => y % 2 == 0,
        2 => x % 3 == 0,
        3 => (x + y) % 3 == 0,
        4 => (y / 2 + x / 3) % 2 == 0,
        5 => (x * y) % 2 + (x * y) % 3 == 0,
        6 => ((x * y) % 2 + (x * y) % 3) % 2 == 0,
        _ => ((x + y) % 2 + (x * y) % 3) % 2 == 0,
    }
}

/// `MASKS[pattern][y % 12]`: the inverted columns of row `y`, computed at compile time.
const MASKS: [[[u64; MAX_LIMBS]; MASK_PERIOD]; MASK_PATTERNS] = {
    let mut t = [[[0u64; MAX_LIMBS]; MASK_PERIOD]; MASK_PATTERNS];
    let mut p = 0;
    while p < MASK_PATTERNS {
        let mut y = 0;
        while y < MASK_PERIOD {
            let mut x = 0;
            while x < 64 * MAX_LIMBS {
                if mask_bit(p, x, y) {
                    t[p][y][x / 64] |= 1 << (x % 64);
                }
                x += 1;
            }
            y += 1;
        }
        p += 1;
    }
    t
};

/// The 15-bit format information for `ec` and a mask pattern: BCH(15,5) with generator
/// 0x537, XOR-masked with 0x5412 (ISO/IEC 18004 §7.9.1).
const fn format_info(ec: EcLevel, pattern: usize) -> u32 {
    // The format's level bits are L=01, M=00, Q=11, H=10: the enum value XOR 1.
    let data = (((ec as u32) ^ 1) << 3) | (pattern as u32);
    let mut rem = data << 10;
    let mut bit = 14;
    while bit >= 10 {
        if rem & (1 << bit) != 0 {
            rem ^= 0x537 << (bit - 10);
        }
        bit -= 1;
    }
    ((data << 10) | rem) ^ 0x5412
}

const FORMAT_INFO: [u32; MASK_PATTERNS] = {
    let mut t = [0; MASK_PATTERNS];
    let mut p = 0;
    while p < MASK_PATTERNS {
        t[p] = format_info(EC_LEVEL, p);
        p += 1;
    }
    t
};

/// Where the 15 format bits go, most significant first, as `(x, y)` with negative values
/// counted from the right/bottom edge: once around the top-left finder, once split between
/// the other two. (The same coordinates as `qrcode::canvas`.)
const FORMAT_COORDS: [[(i16, i16); 15]; 2] = [
    [
        (0, 8),
        (1, 8),
        (2, 8),
        (3, 8),
        (4, 8),
        (5, 8),
        (7, 8),
        (8, 8),
        (8, 7),
        (8, 5),
        (8, 4),
        (8, 3),
        (8, 2),
        (8, 1),
        (8, 0),
    ],
    [
        (8, -1),
        (8, -2),
        (8, -3),
        (8, -4),
        (8, -5),
        (8, -6),
        (8, -7),
        (-8, 8),
        (-7, 8),
        (-6, 8),
        (-5, 8),
        (-4, 8),
        (-3, 8),
        (-2, 8),
        (-1, 8),
    ],
];

/// `grid = fixed XOR (maskable AND mask)`, then the format information for `pattern`.
fn apply_mask<const N: usize>(
    fixed: &[Row<N>],
    maskable: &[Row<N>],
    pattern: usize,
    grid: &mut [Row<N>],
) {
    let masks = &MASKS[pattern];
    for (y, (g, (f, m))) in grid.iter_mut().zip(fixed.iter().zip(maskable)).enumerate() {
        let mask = Row(std::array::from_fn(|i| masks[y % MASK_PERIOD][i]));
        *g = *f ^ (*m & mask);
    }
    let w = grid.len();
    let at = |v: i16| usize::try_from(v).unwrap_or_else(|_| w - usize::from(v.unsigned_abs()));
    let info = FORMAT_INFO[pattern];
    for coords in &FORMAT_COORDS {
        for (i, &(x, y)) in coords.iter().enumerate() {
            grid[at(y)].set(at(x), info >> (14 - i) & 1 == 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Penalty scoring, bit-parallel. Each rule counts exactly what `qrcode::canvas::Canvas`'s
// `compute_total_penalty_scores` counts for a full-size symbol, so the same mask wins.

fn penalty<const N: usize>(rows: &[Row<N>], w: usize) -> i64 {
    let valid = Row::<N>::low_bits(w);
    // Bit x set: x and x + 1 are both inside the row.
    let valid_pair = Row::<N>::low_bits(w.saturating_sub(1));
    let mut score: i64 = 0;
    let mut dark: i64 = 0;
    let mut finder_h: i64 = 0;
    let mut prev_same_right: Option<Row<N>> = None;
    for (y, &r) in rows.iter().enumerate() {
        dark += i64::from(r.count());
        // N1, rows: runs of five or more same-coloured modules.
        let same_right = !(r ^ r.shr(1)) & valid_pair;
        score += runs_of_five(same_right);
        // N2: 2×2 blocks of one colour (overlapping blocks all count).
        if let Some(above) = prev_same_right {
            let same_below = !(rows[y - 1] ^ r);
            score += 3 * i64::from((above & same_right & same_below).count());
        }
        prev_same_right = Some(same_right);
        // N3, rows: 1:1:3:1:1 finder-like patterns with 4 light modules on either side.
        let light = !r & valid;
        let found = r & light.shr(1) & r.shr(2) & r.shr(3) & r.shr(4) & light.shr(5) & r.shr(6);
        if found != Row::ZERO {
            let dark_before = r.shl(1) | r.shl(2) | r.shl(3) | r.shl(4);
            let dark_after = r.shr(7) | r.shr(8) | r.shr(9) | r.shr(10);
            finder_h += 40 * i64::from((found & !(dark_before & dark_after)).count());
        }
    }
    // N1, columns: the same run rule, one bit per column. `run` marks the columns where rows
    // y..=y+4 all agree (the column form of `four` in [`runs_of_five`]).
    let mut prev_run = Row::ZERO;
    for win in rows.windows(5) {
        let mut run = valid;
        for pair in win.windows(2) {
            run = run & !(pair[0] ^ pair[1]);
        }
        score += i64::from(run.count()) + 2 * i64::from((run & !prev_run).count());
        prev_run = run;
    }
    // N3, columns.
    let mut finder_v: i64 = 0;
    for (y, win) in rows.windows(7).enumerate() {
        let l = |i: usize| !win[i] & valid;
        let found = win[0] & l(1) & win[2] & win[3] & win[4] & l(5) & win[6];
        if found == Row::ZERO {
            continue;
        }
        let before = rows[y.saturating_sub(4)..y]
            .iter()
            .fold(Row::ZERO, |a, &b| a | b);
        let after = rows[(y + 7).min(w)..(y + 11).min(w)]
            .iter()
            .fold(Row::ZERO, |a, &b| a | b);
        finder_v += 40 * i64::from((found & !(before & after)).count());
    }
    // The three real finder patterns always match 9 times in each direction; `qrcode`
    // subtracts them.
    score += finder_h - 360 + finder_v - 360;
    // N4: deviation of the dark share from 50 %, in steps of 1/200 (not rounded to 5 %).
    let total = i64::try_from(w * w).unwrap_or(i64::MAX).max(1);
    score += (dark * 200 / total - 100).abs();
    score
}

/// Points for the runs in `same_next`, where bit x says module x equals module x + 1: a run
/// of k ≥ 5 equal modules is a run of k - 1 ≥ 4 ones and scores k - 2 (3 + (k - 5)).
fn runs_of_five<const N: usize>(same_next: Row<N>) -> i64 {
    let four = same_next & same_next.shr(1) & same_next.shr(2) & same_next.shr(3);
    // A run of m ≥ 4 ones leaves m - 3 bits in `four`, the first of them a start.
    let starts = four & !four.shl(1);
    i64::from(four.count()) + 2 * i64::from(starts.count())
}

/// A row of modules as a bitset, bit x of the row = bit `x % 64` of word `x / 64`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Row<const N: usize>([u64; N]);

impl<const N: usize> Row<N> {
    const ZERO: Self = Row([0; N]);

    /// Bits `0..n`.
    fn low_bits(n: usize) -> Self {
        Row(std::array::from_fn(|i| {
            let lo = i * 64;
            if n >= lo + 64 {
                u64::MAX
            } else if n > lo {
                (1u64 << (n - lo)) - 1
            } else {
                0
            }
        }))
    }

    fn set(&mut self, x: usize, on: bool) {
        let (word, bit) = (x / 64, x % 64);
        if on {
            self.0[word] |= 1 << bit;
        } else {
            self.0[word] &= !(1 << bit);
        }
    }

    /// Bit x of the result is bit x + k of `self` (0 < k < 64).
    #[inline(always)]
    fn shr(self, k: u32) -> Self {
        Row(std::array::from_fn(|i| {
            let carry = if i + 1 < N {
                self.0[i + 1] << (64 - k)
            } else {
                0
            };
            (self.0[i] >> k) | carry
        }))
    }

    /// Bit x of the result is bit x - k of `self` (0 < k < 64); low bits become 0.
    #[inline(always)]
    fn shl(self, k: u32) -> Self {
        Row(std::array::from_fn(|i| {
            let carry = if i > 0 { self.0[i - 1] >> (64 - k) } else { 0 };
            (self.0[i] << k) | carry
        }))
    }

    fn count(self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
}

impl<const N: usize> BitAnd for Row<N> {
    type Output = Self;
    #[inline(always)]
    fn bitand(self, o: Self) -> Self {
        Row(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }
}

impl<const N: usize> BitOr for Row<N> {
    type Output = Self;
    #[inline(always)]
    fn bitor(self, o: Self) -> Self {
        Row(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }
}

impl<const N: usize> BitXor for Row<N> {
    type Output = Self;
    #[inline(always)]
    fn bitxor(self, o: Self) -> Self {
        Row(std::array::from_fn(|i| self.0[i] ^ o.0[i]))
    }
}

impl<const N: usize> Not for Row<N> {
    type Output = Self;
    #[inline(always)]
    fn not(self) -> Self {
        Row(std::array::from_fn(|i| !self.0[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG made by [`png`] back to text with an independent QR reader (`rqrr`).
    pub(crate) fn decode(png_bytes: &[u8]) -> String {
        let dec = png::Decoder::new(png_bytes);
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.bit_depth, png::BitDepth::One);
        let (w, h) = (info.width as usize, info.height as usize);
        let rb = info.line_size;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            if buf[y * rb + x / 8] & (0x80 >> (x % 8)) != 0 {
                255
            } else {
                0
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    /// URIs of several lengths, so that several QR versions (and 1-, 2- and 3-word rows) are
    /// exercised.
    fn sample_uris() -> Vec<String> {
        let mut uris = vec![
            "hello".to_owned(),
            "HELLO WORLD 1234567890".to_owned(),
            crate::totp::otpauth_uri("Tessera", "alice@example.com", &"A".repeat(32)),
            crate::totp::otpauth_uri(
                "Foo Corp",
                "alan.turing@example.com",
                "NAGCCFS3EYRB422HNAKAKY3XDUORMSRF",
            ),
            "otpauth://totp/Tessera:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Tessera&algorithm=SHA1&digits=6&period=30".to_owned(),
            crate::totp::otpauth_uri(
                "Ünïcödé Issuer & Co: \"quoted\"",
                "a.very.long.user.name+tag@subdomain.example.co.uk",
                &crate::totp::TotpSecret::from_bytes(vec![0x3c; 64]).to_base32(),
            ),
        ];
        // The issuer appears twice: these reach versions 3 to 38 (21 to 169 modules).
        for n in [1, 10, 30, 60, 100, 200, 400, 700, 1000] {
            let secret = crate::totp::TotpSecret::generate().to_base32();
            uris.push(crate::totp::otpauth_uri(
                &"Issuer-".repeat(n / 7 + 1),
                &format!("user{n}@example.com"),
                &secret,
            ));
        }
        uris
    }

    #[test]
    fn the_png_decodes_back_to_exactly_the_uri() {
        let uri = crate::totp::otpauth_uri(
            "Foo Corp",
            "alan.turing@example.com",
            "NAGCCFS3EYRB422HNAKAKY3XDUORMSRF",
        );
        let bytes = png(&uri).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(decode(&bytes), uri);
    }

    #[test]
    fn pngs_of_many_uris_decode_back_to_exactly_those_uris() {
        for uri in sample_uris() {
            let bytes = png(&uri).unwrap();
            assert_eq!(decode(&bytes), uri, "{uri}");
        }
    }

    #[test]
    fn symbols_are_exactly_what_the_qrcode_crate_draws() {
        // Same version, same codewords, same mask choice, same format bits.
        let mut widths = std::collections::BTreeSet::new();
        for uri in sample_uris() {
            let ours = Symbol::encode(&uri).unwrap();
            let theirs = qrcode::QrCode::with_error_correction_level(&uri, EcLevel::M).unwrap();
            assert_eq!(ours.width, theirs.width(), "{uri}");
            assert!(
                ours.colors() == theirs.to_colors(),
                "modules differ for {uri}"
            );
            widths.insert(ours.limbs);
        }
        assert_eq!(widths.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn format_information_matches_the_standard_table() {
        // ISO/IEC 18004 Table C.1, level M and L, masks 0 and 1.
        assert_eq!(format_info(EcLevel::M, 0), 0x5412);
        assert_eq!(format_info(EcLevel::M, 1), 0x5125);
        assert_eq!(format_info(EcLevel::L, 0), 0x77c4);
        assert_eq!(format_info(EcLevel::H, 7), 0x083b);
        assert_eq!(format_info(EcLevel::Q, 7), 0x2bed);
    }

    #[test]
    fn the_image_keeps_its_size_and_quiet_zone() {
        let uri = "otpauth://totp/Tessera:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Tessera&algorithm=SHA1&digits=6&period=30";
        let bytes = png(uri).unwrap();
        let mut reader = png::Decoder::new(&bytes[..]).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        // Version 8 (49 modules) + 2 × 4 quiet modules, 8 px each.
        assert_eq!((info.width, info.height), (456, 456));
        let rb = info.line_size;
        let quiet_px = QUIET * SCALE;
        for y in 0..456 {
            for x in 0..456 {
                let white = buf[y * rb + x / 8] & (0x80 >> (x % 8)) != 0;
                let in_quiet =
                    x < quiet_px || y < quiet_px || x >= 456 - quiet_px || y >= 456 - quiet_px;
                if in_quiet {
                    assert!(white, "quiet zone pixel ({x}, {y}) is dark");
                }
            }
        }
        // The top-left finder's corner module is dark.
        assert_eq!(buf[quiet_px * rb + quiet_px / 8], 0);
        assert!(bytes.len() < 3000, "PNG is {} bytes", bytes.len());
    }

    #[test]
    fn data_too_long_for_any_qr_version_is_an_error() {
        assert!(matches!(png(&"x".repeat(3000)), Err(QrError::TooLong(_))));
    }

    #[test]
    fn the_data_uri_has_the_png_prefix() {
        let d = png_data_uri("hello").unwrap();
        assert!(d.starts_with("data:image/png;base64,iVBORw0KGgo"));
    }
}
