//! Datasets: reading the real file formats (IDX, CIFAR-10 binary batches, class-folder image
//! trees), the data cache, fetching, and assembling deterministic, augmented batches.

pub mod batch;
pub mod cifar;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod pixels;

use std::path::{Path, PathBuf};

use crate::check::{DataFormat, DatasetSpec};
use crate::diag::{code, Diag};

/// What went wrong with a dataset file: which file, what, and what to do.
#[derive(Debug, Clone)]
pub struct DataError {
    pub code: &'static str,
    pub path: PathBuf,
    pub problem: String,
    pub help: String,
}

impl DataError {
    pub fn new(
        code: &'static str,
        path: &Path,
        problem: impl Into<String>,
        help: impl Into<String>,
    ) -> DataError {
        DataError {
            code,
            path: path.to_path_buf(),
            problem: problem.into(),
            help: help.into(),
        }
    }

    pub fn to_diag(&self) -> Diag {
        Diag::global(
            self.code,
            format!("{}: {}", self.path.display(), self.problem),
        )
        .help(self.help.clone())
    }
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.path.display(),
            self.problem,
            self.help
        )
    }
}

/// Examples kept in memory as bytes, `[n, c, h, w]` row-major, with labels.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    pub shape: [usize; 3],
    pub pixels: pixels::Pixels,
    pub labels: Vec<u16>,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn example_size(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.example_size();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Asks the CPU to start loading example `i`'s bytes into its caches. A shuffled batch's
    /// examples lie all over a file larger than the caches: each one's first read waited on
    /// memory, most of the time it took to normalise a batch. (A no-op off x86-64.)
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        for line in self.image(i).chunks(64) {
            // SAFETY: a prefetch is a hint: it reads nothing the program sees and cannot fault
            // (the address is inside the image anyway).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    line.as_ptr().cast(),
                )
            };
        }
    }
}

/// Where an example comes from: memory, or image files decoded on demand.
#[derive(Debug)]
pub enum Source {
    Memory(Examples),
    Folder(folder::ImageFolder),
}

impl Source {
    pub fn len(&self) -> usize {
        match self {
            Source::Memory(e) => e.len(),
            Source::Folder(f) => f.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded dataset: its spec and the training and test examples.
#[derive(Debug)]
pub struct Dataset {
    pub spec: DatasetSpec,
    pub train: Source,
    pub test: Source,
}

/// The data cache: `$LTHC_DATA`, else the user's cache directory + `lthc/data`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LTHC_DATA") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("lthc").join("data")
}

/// The directory of a dataset's files.
pub fn dataset_dir(spec: &DatasetSpec, data_dir: &Path) -> PathBuf {
    let p = Path::new(&spec.source);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    }
}

/// Loads a dataset, fetching it first if it is missing and lthc knows how.
pub fn load(spec: &DatasetSpec, data_dir: &Path, progress: bool) -> Result<Dataset, DataError> {
    let dir = dataset_dir(spec, data_dir);
    if let Some(fetcher) = &spec.fetch {
        if !fetch::present(fetcher, &dir) {
            fetch::fetch(fetcher, &dir, progress)?;
        }
    }
    let (train, test) = match spec.format {
        DataFormat::Idx => {
            let (a, b) = idx::load_dir(&dir)?;
            (Source::Memory(a), Source::Memory(b))
        }
        DataFormat::Cifar10Binary => {
            let (a, b) = cifar::load_dir(&dir)?;
            (Source::Memory(a), Source::Memory(b))
        }
        DataFormat::ImageFolder => {
            let side = spec.shape.get(1).copied().unwrap_or(224) as u32;
            let resize = spec.resize.map_or(side, |r| r as u32);
            (
                Source::Folder(folder::ImageFolder::open(&dir.join("train"), side, resize)?),
                Source::Folder(folder::ImageFolder::open(&dir.join("val"), side, resize)?),
            )
        }
    };
    check_matches(spec, &dir, &train, &test)?;
    Ok(Dataset {
        spec: spec.clone(),
        train,
        test,
    })
}

/// The files must agree with what the `.lth` dataset definition promises.
fn check_matches(
    spec: &DatasetSpec,
    dir: &Path,
    train: &Source,
    test: &Source,
) -> Result<(), DataError> {
    let want = |what: &str, found: usize, expected: u64| -> Result<(), DataError> {
        if found as u64 == expected {
            return Ok(());
        }
        Err(DataError::new(
            code::DATA_FORMAT,
            dir,
            format!(
                "the {what} set has {found} examples, but dataset `{}` says {expected}",
                spec.name
            ),
            format!(
                "fix `{}_size` in the dataset definition, or the files",
                what
            ),
        ))
    };
    want("train", train.len(), spec.train_size)?;
    want("test", test.len(), spec.test_size)?;
    if let Source::Memory(e) = train {
        let shape: Vec<u64> = e.shape.iter().map(|&x| x as u64).collect();
        let flat = shape.iter().product::<u64>();
        if shape != spec.shape && vec![flat] != spec.shape {
            return Err(DataError::new(
                code::DATA_FORMAT,
                dir,
                format!(
                    "examples have shape {:?}, but dataset `{}` says {:?}",
                    shape, spec.name, spec.shape
                ),
                "fix `shape` in the dataset definition",
            ));
        }
        if let Some(&bad) = e.labels.iter().find(|&&l| l as u64 >= spec.classes) {
            return Err(DataError::new(
                code::DATA_FORMAT,
                dir,
                format!("label {bad} is out of range for {} classes", spec.classes),
                "fix `classes` in the dataset definition",
            ));
        }
    }
    Ok(())
}
