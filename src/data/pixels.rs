//! The bytes of a data set's images: read into memory, or mapped from an uncompressed file.
//!
//! Mapping shares the kernel's page cache instead of copying 47 MB (MNIST's training images)
//! into fresh memory: on the development VM, faulting in that fresh memory cost ~170 ms of
//! every `lthc run`'s start (and again in each worker process), a read into reused memory
//! 11 ms. The file is checked (header, size) before it is used, like a read one.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// Image bytes, `[n, c, h, w]` row-major.
#[derive(Clone, Debug)]
pub struct Pixels(Storage);

#[derive(Clone, Debug)]
enum Storage {
    Owned(Vec<u8>),
    /// `map[offset..]`, shared between clones.
    Mapped {
        map: Arc<memmap2::Mmap>,
        offset: usize,
    },
}

impl Pixels {
    /// The bytes of `file`, mapped read-only.
    ///
    /// lthc replaces data files only by renaming a finished file into place, which leaves a
    /// mapping of the old one intact; a program that truncates the file in place while a run
    /// has it mapped would crash that run (SIGBUS), as with any mapped file.
    pub fn map(file: &File) -> std::io::Result<Pixels> {
        // SAFETY: see above: the mapping is read-only, and the file is not changed in place
        // by lthc while it is mapped.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Pixels(Storage::Mapped {
            map: Arc::new(map),
            offset: 0,
        }))
    }

    /// The bytes after the first `n` (at most all of them).
    pub fn skip(self, n: usize) -> Pixels {
        let n = n.min(self.len());
        Pixels(match self.0 {
            Storage::Owned(mut v) => {
                v.drain(..n);
                Storage::Owned(v)
            }
            Storage::Mapped { map, offset } => Storage::Mapped {
                map,
                offset: offset + n,
            },
        })
    }

    /// Whether the bytes are mapped from a file (for tests).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Storage::Mapped { .. })
    }
}

impl Default for Pixels {
    fn default() -> Pixels {
        Vec::new().into()
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(v: Vec<u8>) -> Pixels {
        Pixels(Storage::Owned(v))
    }
}

impl FromIterator<u8> for Pixels {
    fn from_iter<I: IntoIterator<Item = u8>>(bytes: I) -> Pixels {
        Vec::from_iter(bytes).into()
    }
}

impl Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Storage::Owned(v) => v,
            Storage::Mapped { map, offset } => &map[*offset..],
        }
    }
}

/// Opens `path` for mapping: `None` when it is gzipped (then it is read and unpacked) or
/// too short to be either (then it is read, and its parser says what is wrong with it).
pub fn open_unzipped(path: &Path) -> std::io::Result<Option<File>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    file.read_exact(&mut magic).map_or(Ok(None), |()| {
        Ok((magic != super::idx::GZIP_MAGIC).then_some(file))
    })
}
