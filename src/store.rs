//! Files that are never half-written and never silently wrong: atomic writes (temporary file in
//! the same directory, fsync, rename) and checksummed blobs verified on every read.

use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"LTHCBLB1";

/// Writes `bytes` to `dest` so that readers see the old file or the whole new one, never a part.
pub fn atomic_write(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[derive(Debug)]
pub enum ReadError {
    Missing,
    /// The file exists but is truncated or damaged: the reason.
    Corrupt(String),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing => write!(f, "missing"),
            ReadError::Corrupt(r) => write!(f, "corrupt: {r}"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Writes `payload` framed with a length and its SHA-256, atomically.
pub fn write_checked(dest: &Path, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&Sha256::digest(payload));
    atomic_write(dest, &out)
}

/// Reads a blob written by [`write_checked`], verifying its length and checksum.
pub fn read_checked(path: &Path) -> Result<Vec<u8>, ReadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Io(e)),
    };
    if bytes.len() < 48 || &bytes[..8] != MAGIC {
        return Err(ReadError::Corrupt("not an lthc blob (bad header)".into()));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    if bytes.len() != 16 + len + 32 {
        return Err(ReadError::Corrupt(format!(
            "length {} does not match the header's {}",
            bytes.len() - 48,
            len
        )));
    }
    let payload = &bytes[16..16 + len];
    if Sha256::digest(payload)[..] != bytes[16 + len..] {
        return Err(ReadError::Corrupt("checksum mismatch".into()));
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_blobs_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.blob");
        write_checked(&p, b"hello weights").unwrap();
        assert_eq!(read_checked(&p).unwrap(), b"hello weights");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(read_checked(&p), Err(ReadError::Corrupt(_))));
        std::fs::write(&p, &bytes[..30]).unwrap();
        assert!(matches!(read_checked(&p), Err(ReadError::Corrupt(_))));
        assert!(matches!(
            read_checked(&dir.path().join("none")),
            Err(ReadError::Missing)
        ));
    }
}
