//! Minimal `.npy` reader for 2-D little-endian float32/float64 C-order arrays (the
//! `--test-inference-file` input); no dependency on an npy crate.

use std::path::Path;

use crate::error::{io_err, BridgeError, Result};

fn bad(msg: impl Into<String>) -> BridgeError {
    BridgeError::Input(msg.into())
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}':"))? + key.len() + 3;
    Some(header[start..].trim_start())
}

/// Returns `(rows, cols, row-major f32 data)`.
pub fn read_f32_matrix(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(format!("{}: not an .npy file", path.display())));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(hstart..hstart + hlen)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|_| bad("header is not UTF-8"))?;
    let descr = header_value(header, "descr").ok_or_else(|| bad("no descr"))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(bad(format!("dtype {descr:.6}: want '<f4' or '<f8'")));
    };
    if !header_value(header, "fortran_order").is_some_and(|v| v.starts_with("False")) {
        return Err(bad("want a C-order array"));
    }
    let shape = header_value(header, "shape").ok_or_else(|| bad("no shape"))?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("bad shape"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(format!("bad shape {inner}"))))
        .collect::<Result<_>>()?;
    let [rows, cols] = dims[..] else {
        return Err(bad(format!("want a 2-D array, got shape ({inner})")));
    };
    let body = &bytes[hstart + hlen..];
    if body.len() != rows * cols * width {
        return Err(bad("data length does not match shape"));
    }
    let data = if width == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((rows, cols, data))
}
