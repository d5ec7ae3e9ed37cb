//! The science: pruning masks (magnitude, random, SNIP), rewinding, and the stability and
//! linear-interpolation measurements, all on host-side states.

pub mod measure;
pub mod prune;
