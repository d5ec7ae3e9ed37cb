//! IDX files, as MNIST and Fashion-MNIST ship them (raw or gzipped).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{DataError, Examples};
use crate::diag::code;

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// `name` or `name.gz` in `dir`, whichever exists.
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// The bytes of a file, gunzipped if it is gzipped.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| {
        DataError::new(
            code::DATA_MISSING,
            path,
            format!("cannot read: {e}"),
            "check the file's permissions",
        )
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::new(
                    code::DATA_FORMAT,
                    path,
                    format!("not a valid gzip file ({e})"),
                    "the download was probably cut short: delete the file and fetch it again",
                )
            })?;
        return Ok(out);
    }
    Ok(raw)
}

/// Parses an IDX file of unsigned bytes: its dimensions and data. The data is the file's
/// buffer with the header moved out, so a 47 MB image file is not copied into fresh memory
/// (page faults on every load).
pub fn parse(mut bytes: Vec<u8>, path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bad = |what: String| {
        DataError::new(
            code::DATA_FORMAT,
            path,
            what,
            "the file is damaged or not an IDX file: delete it and fetch it again",
        )
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic number)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "IDX element type 0x{:02x} is not unsigned bytes (0x08)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(bad("truncated IDX header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("IDX dimensions overflow".into()))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(bad(format!(
            "the header promises {expected} values ({dims:?}) but the file holds {}{}",
            data.len(),
            if data.len() < expected {
                " (truncated)"
            } else {
                ""
            }
        )));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<Examples, DataError> {
    let missing = |name: &str| {
        DataError::new(
            code::DATA_MISSING,
            &dir.join(name),
            "file not found",
            "run `lthc data fetch <dataset>`, or put the IDX files (raw or .gz) in this directory",
        )
    };
    let ip = find(dir, images).ok_or_else(|| missing(images))?;
    let lp = find(dir, labels).ok_or_else(|| missing(labels))?;
    let (idims, pixels) = parse(read_maybe_gz(&ip)?, &ip)?;
    let (ldims, labels_raw) = parse(read_maybe_gz(&lp)?, &lp)?;
    if idims.len() != 3 {
        return Err(DataError::new(
            code::DATA_FORMAT,
            &ip,
            format!("expected images [n, h, w], found dimensions {idims:?}"),
            "is this an image file?",
        ));
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        return Err(DataError::new(
            code::DATA_FORMAT,
            &lp,
            format!(
                "{} labels for {} images",
                ldims.first().copied().unwrap_or(0),
                idims[0]
            ),
            "the image and label files do not belong together",
        ));
    }
    Ok(Examples {
        shape: [1, idims[1], idims[2]],
        pixels,
        labels: labels_raw.into_iter().map(u16::from).collect(),
    })
}

/// Train and test examples from a directory of the four IDX files.
pub fn load_dir(dir: &Path) -> Result<(Examples, Examples), DataError> {
    Ok((
        load_pair(dir, TRAIN_IMAGES, TRAIN_LABELS)?,
        load_pair(dir, TEST_IMAGES, TEST_LABELS)?,
    ))
}

/// Writes an IDX file of unsigned bytes (for tests and tools).
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let bytes = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let (dims, data) = parse(bytes.clone(), Path::new("x")).unwrap();
        assert_eq!(dims, vec![2, 2, 3]);
        assert_eq!(data.len(), 12);
        let err = parse(bytes[..bytes.len() - 1].to_vec(), Path::new("x")).unwrap_err();
        assert!(err.problem.contains("truncated"), "{}", err.problem);
        let err = parse(b"PK\x03\x04".to_vec(), Path::new("x")).unwrap_err();
        assert!(err.problem.contains("magic"));
    }
}
