//! Directories as input: wherever files are named, a directory stands for every `.lth` file
//! under it (hidden folders such as caches skipped), in path order.

use std::path::PathBuf;

use crate::diag::{code, Diag};

pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Box<Diag>> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            // A file, or a path that does not exist (checking it says so).
            out.push(path.clone());
            continue;
        }
        let before = out.len();
        let walk = walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            let entry = entry.map_err(|e| {
                Box::new(
                    Diag::global(
                        code::IO_READ,
                        format!("cannot read `{}`: {e}", path.display()),
                    )
                    .help("check the directory's permissions"),
                )
            })?;
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|x| x == "lth") {
                out.push(entry.into_path());
            }
        }
        if out.len() == before {
            return Err(Box::new(
                Diag::global(
                    code::IO_READ,
                    format!("`{}` holds no .lth files", path.display()),
                )
                .help("name .lth files, or a directory that has some"),
            ));
        }
    }
    Ok(out)
}
