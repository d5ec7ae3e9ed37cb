//! IDX files, as MNIST and Fashion-MNIST ship them (raw or gzipped).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::pixels::{open_unzipped, Pixels};
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

/// The bytes of a file: mapped, or read and gunzipped if it is gzipped.
pub fn read_maybe_gz(path: &Path) -> Result<Pixels, DataError> {
    let unreadable = |e: std::io::Error| {
        DataError::new(
            code::DATA_MISSING,
            path,
            format!("cannot read: {e}"),
            "check the file's permissions",
        )
    };
    if let Some(file) = open_unzipped(path).map_err(unreadable)? {
        return Pixels::map(&file).map_err(unreadable);
    }
    let raw = std::fs::read(path).map_err(unreadable)?;
    let bytes = gunzip_if_gzipped(raw).map_err(|e| {
        DataError::new(
            code::DATA_FORMAT,
            path,
            format!("not a valid gzip file ({e})"),
            "the download was probably cut short: delete the file and fetch it again",
        )
    })?;
    Ok(bytes.into())
}

/// The first two bytes of every gzip file.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `bytes` unpacked if they start with [`GZIP_MAGIC`], else as they are.
pub fn gunzip_if_gzipped(bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out)?;
    Ok(out)
}

/// Parses an IDX file of unsigned bytes: its dimensions and data. The data is the file's
/// bytes past the header (a mapped file stays mapped), so a 47 MB image file is not copied.
pub fn parse(bytes: Pixels, path: &Path) -> Result<(Vec<usize>, Pixels), DataError> {
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
    Ok((dims, bytes.skip(header)))
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
        labels: labels_raw.iter().map(|&l| u16::from(l)).collect(),
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
        let (dims, data) = parse(bytes.clone().into(), Path::new("x")).unwrap();
        assert_eq!(dims, vec![2, 2, 3]);
        assert_eq!(data.len(), 12);
        let err = parse(bytes[..bytes.len() - 1].to_vec().into(), Path::new("x")).unwrap_err();
        assert!(err.problem.contains("truncated"), "{}", err.problem);
        let err = parse(b"PK\x03\x04".to_vec().into(), Path::new("x")).unwrap_err();
        assert!(err.problem.contains("magic"));
    }

    #[test]
    fn raw_files_are_mapped_and_gzipped_ones_read_with_the_same_examples() {
        use std::io::Write;
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 37 % 256) as u8).collect();
        let images = encode(&[3, 4, 5], &pixels);
        let labels = encode(&[3], &[7, 0, 9]);
        let (raw, gz) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (name, bytes) in [(TRAIN_IMAGES, &images), (TRAIN_LABELS, &labels)] {
            std::fs::write(raw.path().join(name), bytes).unwrap();
            let file = std::fs::File::create(gz.path().join(format!("{name}.gz"))).unwrap();
            let mut z = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            z.write_all(bytes).unwrap();
            z.finish().unwrap();
        }
        let mapped = load_pair(raw.path(), TRAIN_IMAGES, TRAIN_LABELS).unwrap();
        let read = load_pair(gz.path(), TRAIN_IMAGES, TRAIN_LABELS).unwrap();
        assert!(mapped.pixels.is_mapped() && !read.pixels.is_mapped());
        for ex in [&mapped, &read] {
            assert_eq!(ex.shape, [1, 4, 5]);
            assert_eq!(&ex.pixels[..], &pixels[..]);
            assert_eq!(ex.labels, [7, 0, 9]);
            assert_eq!(ex.image(2), &pixels[40..60]);
        }
        // A mapped file too short for its header is refused like a read one (the mapping
        // above is gone first: truncating a mapped file in place is what must not happen).
        drop(mapped);
        std::fs::write(raw.path().join(TRAIN_IMAGES), &images[..images.len() - 1]).unwrap();
        let err = load_pair(raw.path(), TRAIN_IMAGES, TRAIN_LABELS).unwrap_err();
        assert!(err.problem.contains("truncated"), "{}", err.problem);
        // An empty file (nothing to map) is read, and is not an IDX file.
        std::fs::write(raw.path().join(TRAIN_IMAGES), b"").unwrap();
        let err = load_pair(raw.path(), TRAIN_IMAGES, TRAIN_LABELS).unwrap_err();
        assert!(err.problem.contains("magic"), "{}", err.problem);
    }
}
