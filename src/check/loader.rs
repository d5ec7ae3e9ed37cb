//! Loading a program: the files named on the command line and everything they import,
//! each parsed once. Import errors (missing file, cycle) and syntax errors are reported here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::{code, Diag};
use crate::lang::ast::{Item, Module};
use crate::lang::{parse, FileId, SourceMap, Span};

/// Where source files come from: the disk, or (for tests and editors) memory.
pub trait SourceProvider {
    /// Reads a file; `Err` holds the reason shown to the user.
    fn read(&self, path: &Path) -> Result<String, String>;
}

pub struct Disk;

impl SourceProvider for Disk {
    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}

/// In-memory files, keyed by path.
#[derive(Default)]
pub struct Memory(pub HashMap<PathBuf, String>);

impl SourceProvider for Memory {
    fn read(&self, path: &Path) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "No such file or directory".to_string())
    }
}

/// Every loaded file of a program, parsed, with its import graph.
#[derive(Default)]
pub struct Program {
    pub sources: SourceMap,
    /// Parsed modules by file; files with syntax errors have an empty module.
    pub modules: Vec<Module>,
    /// The files named by the user, in order.
    pub roots: Vec<FileId>,
    /// Direct imports of each file.
    pub imports: Vec<Vec<FileId>>,
    pub diags: Vec<Diag>,
    by_key: HashMap<String, FileId>,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Loading,
    Done,
}

struct Loader<'a> {
    provider: &'a dyn SourceProvider,
    prog: Program,
    state: Vec<State>,
    stack: Vec<FileId>,
}

/// Loads `paths` and their imports.
pub fn load(paths: &[PathBuf], provider: &dyn SourceProvider) -> Program {
    let mut l = Loader {
        provider,
        prog: Program::default(),
        state: Vec::new(),
        stack: Vec::new(),
    };
    for p in paths {
        let display = display_path(p);
        let source = match stdlib_key(&display) {
            Some(key) => Ok((
                key,
                None,
                crate::stdlib::get(&display).unwrap_or_default().to_string(),
            )),
            None => provider.read(p).map(|t| (disk_key(p), Some(p.clone()), t)),
        };
        match source {
            Ok((key, path, text)) => {
                if let Some(id) = l.load_file(key, display, path, text, None) {
                    if !l.prog.roots.contains(&id) {
                        l.prog.roots.push(id);
                    }
                }
            }
            Err(e) => l.prog.diags.push(
                Diag::global(code::IO_READ, format!("cannot read `{display}`: {e}"))
                    .help("check the path; lthc takes .lth files"),
            ),
        }
    }
    l.prog
}

fn stdlib_key(path: &str) -> Option<String> {
    let p = path.strip_prefix("./").unwrap_or(path);
    crate::stdlib::get(p).map(|_| p.to_string())
}

fn disk_key(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .to_string()
}

impl Loader<'_> {
    /// Loads one file (once); `from` is the import that asked for it, for cycle reports.
    fn load_file(
        &mut self,
        key: String,
        display: String,
        path: Option<PathBuf>,
        text: String,
        from: Option<(FileId, Span)>,
    ) -> Option<FileId> {
        if let Some(&id) = self.prog.by_key.get(&key) {
            if self.state[id.0] == State::Loading {
                let (file, span) = from?;
                let chain: Vec<String> = self
                    .stack
                    .iter()
                    .skip_while(|f| **f != id)
                    .map(|f| self.prog.sources.get(*f).name.clone())
                    .chain(std::iter::once(self.prog.sources.get(id).name.clone()))
                    .collect();
                self.prog.diags.push(
                    Diag::error(
                        code::IMPORT_CYCLE,
                        file,
                        span,
                        format!("import cycle: {}", chain.join(" → ")),
                    )
                    .label("this import closes the cycle")
                    .help("move the shared definitions into a file that both can import"),
                );
            }
            return Some(id);
        }
        let id = self.prog.sources.add(display, path, text);
        self.prog.by_key.insert(key, id);
        self.state.push(State::Loading);
        self.prog.imports.push(Vec::new());
        let module = match parse(id, &self.prog.sources.get(id).text) {
            Ok(m) => m,
            Err(d) => {
                self.prog.diags.push(*d);
                Module::default()
            }
        };
        self.prog.modules.push(module);
        self.stack.push(id);
        let imports: Vec<(String, Span)> = self.prog.modules[id.0]
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Import(imp) => Some((imp.path.clone(), imp.span)),
                _ => None,
            })
            .collect();
        for (target, span) in imports {
            if let Some(dep) = self.resolve_import(id, &target, span) {
                self.prog.imports[id.0].push(dep);
            }
        }
        self.stack.pop();
        self.state[id.0] = State::Done;
        Some(id)
    }

    fn resolve_import(&mut self, from: FileId, target: &str, span: Span) -> Option<FileId> {
        let base_dir = self
            .prog
            .sources
            .get(from)
            .path
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        // `stdlib/...` always means the library compiled into lthc, so that it is loaded once
        // whatever the importer's directory; other paths are relative to the importer.
        if let Some(key) = stdlib_key(target) {
            let text = crate::stdlib::get(&key).unwrap_or_default().to_string();
            return self.load_file(key.clone(), key, None, text, Some((from, span)));
        }
        if let Some(candidate) = base_dir.as_ref().map(|d| d.join(target)) {
            if let Ok(text) = self.provider.read(&candidate) {
                let display = display_path(&candidate);
                return self.load_file(
                    disk_key(&candidate),
                    display,
                    Some(candidate),
                    text,
                    Some((from, span)),
                );
            }
        }
        let mut d = Diag::error(
            code::IMPORT_NOT_FOUND,
            from,
            span,
            format!("cannot find imported file `{target}`"),
        )
        .label("no such file");
        d = d.help(match &base_dir {
            Some(dir) => format!(
                "imports are relative to the importing file (looked for `{}`); the standard library is imported as `stdlib/<name>.lth`",
                dir.join(target).display()
            ),
            None => "the standard library files are: ".to_string()
                + &crate::stdlib::FILES.iter().map(|(p, _)| format!("`{p}`")).collect::<Vec<_>>().join(", "),
        });
        self.prog.diags.push(d);
        None
    }
}

fn display_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

impl Program {
    /// Files reachable from `file` through imports, itself included.
    pub fn reachable(&self, file: FileId) -> Vec<FileId> {
        let mut seen = vec![false; self.modules.len()];
        let mut todo = vec![file];
        let mut out = Vec::new();
        while let Some(f) = todo.pop() {
            if std::mem::replace(&mut seen[f.0], true) {
                continue;
            }
            out.push(f);
            todo.extend(self.imports[f.0].iter().copied());
        }
        out
    }
}
