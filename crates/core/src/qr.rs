//! QR codes of `otpauth://` URIs as `data:image/png;base64,...` URIs.
//!
//! The QR matrix comes from the `qrcode` crate; the PNG is written directly as a 1-bit
//! greyscale image with the `png` crate (no image-processing stack), which keeps the data URI
//! small (a few hundred bytes) and rendering fast.

use base64::Engine;

/// Pixels per QR module. 8 px gives a ~400 px image for a typical URI: large enough for a
/// phone camera at normal viewing size, small enough to stay crisp when scaled by a browser.
const SCALE: usize = 8;
/// The quiet zone the QR specification requires around the symbol, in modules.
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("data does not fit in a QR code: {0}")]
    TooLong(String),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// Renders `data` as a QR code (error correction level M) in a PNG.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M)
        .map_err(|e| QrError::TooLong(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let row_bytes = side.div_ceil(8);
    // 1 bit per pixel, MSB first; a set bit is white (greyscale 1), so start all white.
    let mut pixels = vec![0xffu8; row_bytes * side];
    for my in 0..modules {
        for mx in 0..modules {
            if colors[my * modules + mx] != qrcode::Color::Dark {
                continue;
            }
            for py in 0..SCALE {
                let y = (my + QUIET) * SCALE + py;
                for px in 0..SCALE {
                    let x = (mx + QUIET) * SCALE + px;
                    pixels[y * row_bytes + x / 8] &= !(0x80 >> (x % 8));
                }
            }
        }
    }
    let side32 = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
    let mut out = Vec::with_capacity(1024);
    {
        let mut enc = png::Encoder::new(&mut out, side32, side32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        w.write_image_data(&pixels)
            .map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}

/// `data:image/png;base64,` + the PNG of [`png`].
pub fn png_data_uri(data: &str) -> Result<String, QrError> {
    let bytes = png(data)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
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
    fn the_data_uri_has_the_png_prefix() {
        let d = png_data_uri("hello").unwrap();
        assert!(d.starts_with("data:image/png;base64,iVBORw0KGgo"));
    }
}
