//! Front end: source text → syntax tree. Knows nothing of meaning.

pub mod ast;
pub mod format;
pub mod parser;
pub mod source;
mod syntax_error;

pub use parser::parse;
pub use source::{FileId, SourceMap, Span};
