//! CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).

use std::path::Path;

use super::{DataError, Examples};
use crate::diag::code;

pub const RECORD: usize = 1 + 3 * 32 * 32;
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";

fn read_batches(dir: &Path, names: &[&str]) -> Result<Examples, DataError> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for name in names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            DataError::new(
                code::DATA_MISSING,
                &path,
                format!("cannot read: {e}"),
                "CIFAR-10 cannot be downloaded here: put the binary version's files (cifar-10-batches-bin) in this directory",
            )
        })?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(DataError::new(
                code::DATA_FORMAT,
                &path,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte records{}",
                    bytes.len(),
                    if bytes.len() % RECORD != 0 {
                        " (truncated?)"
                    } else {
                        ""
                    }
                ),
                "use the CIFAR-10 *binary* version; the file may be damaged",
            ));
        }
        for rec in bytes.chunks_exact(RECORD) {
            if rec[0] > 9 {
                return Err(DataError::new(
                    code::DATA_FORMAT,
                    &path,
                    format!("label {} is not a CIFAR-10 class (0-9)", rec[0]),
                    "is this the CIFAR-100 binary format?",
                ));
            }
            labels.push(u16::from(rec[0]));
            pixels.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Examples {
        shape: [3, 32, 32],
        pixels: pixels.into(),
        labels,
    })
}

pub fn load_dir(dir: &Path) -> Result<(Examples, Examples), DataError> {
    Ok((
        read_batches(dir, &TRAIN_FILES)?,
        read_batches(dir, &[TEST_FILE])?,
    ))
}
