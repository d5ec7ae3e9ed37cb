//! The stable diagnostic codes. Editors and tests match on these; never rename one.
//! docs/diagnostics.md lists them with examples.

pub const PARSE_SYNTAX: &str = "lth::parse::syntax";
pub const PARSE_NUMBER: &str = "lth::parse::number";

pub const IMPORT_NOT_FOUND: &str = "lth::import::not_found";
pub const IMPORT_CYCLE: &str = "lth::import::cycle";
pub const IO_READ: &str = "lth::io::read";

pub const NAME_UNKNOWN: &str = "lth::name::unknown";
pub const NAME_DUPLICATE: &str = "lth::name::duplicate";
pub const NAME_NOT_IMPORTED: &str = "lth::name::not_imported";
pub const NAME_UNKNOWN_FIELD: &str = "lth::name::unknown_field";
pub const NAME_DUPLICATE_FIELD: &str = "lth::name::duplicate_field";
pub const NAME_MISSING_FIELD: &str = "lth::name::missing_field";
pub const NAME_UNKNOWN_LAYER: &str = "lth::name::unknown_layer";
pub const NAME_UNKNOWN_ARGUMENT: &str = "lth::name::unknown_argument";
pub const NAME_WRONG_KIND: &str = "lth::name::wrong_kind";

pub const TYPE_MISMATCH: &str = "lth::type::mismatch";
pub const TYPE_ARITY: &str = "lth::type::arity";
pub const TYPE_SWEEP_PLACE: &str = "lth::type::sweep_place";

pub const UNIT_WRONG: &str = "lth::unit::wrong";
pub const UNIT_MISSING: &str = "lth::unit::missing";

pub const RANGE_FRACTION: &str = "lth::range::fraction";
pub const RANGE_VALUE: &str = "lth::range::value";
pub const RANGE_REWIND: &str = "lth::range::rewind_after_end";
pub const RANGE_REQUIRE: &str = "lth::range::require";
pub const RANGE_ARITHMETIC: &str = "lth::range::arithmetic";

pub const SHAPE_MISMATCH: &str = "lth::shape::mismatch";
pub const NET_RECURSION: &str = "lth::net::recursion";
pub const NET_NO_PRUNABLE: &str = "lth::net::no_prunable_layer";
pub const DERIVE_CYCLE: &str = "lth::name::derive_cycle";

pub const DATA_MISSING: &str = "lth::data::missing";
pub const DATA_FORMAT: &str = "lth::data::format";
pub const DATA_CHECKSUM: &str = "lth::data::checksum";
pub const DATA_FETCH: &str = "lth::data::fetch";

pub const EXEC_TRAIN: &str = "lth::exec::train";
pub const EXEC_CORRUPT: &str = "lth::exec::corrupt";
pub const EXEC_IO: &str = "lth::exec::io";
pub const EXEC_DEVICE: &str = "lth::exec::device";
pub const EXEC_PANIC: &str = "lth::exec::panic";
pub const EXEC_DIVERGED: &str = "lth::exec::diverged";
pub const EXEC_STRICT: &str = "lth::exec::strict";
pub const EXEC_INTERRUPTED: &str = "lth::exec::interrupted";
pub const EXEC_WORKER: &str = "lth::exec::worker";

pub const EXEC_EXECUTOR: &str = "lth::exec::executor";

pub const SLURM_MISSING: &str = "lth::slurm::missing";
pub const SLURM_SUBMIT: &str = "lth::slurm::submit";
pub const SLURM_JOB: &str = "lth::slurm::job";
pub const SLURM_STALE: &str = "lth::slurm::stale";

pub const REPORT_IO: &str = "lth::report::io";
