//! A request to stop training cleanly (the first Ctrl-C): each training loop saves where it is
//! and returns [`TrainError::Interrupted`](super::TrainError::Interrupted) at its next
//! iteration; nothing is left half-written, and the same command resumes.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every training loop of this process to stop at its next iteration.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
