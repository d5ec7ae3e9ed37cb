//! How the kernels split work between threads: in fixed pieces (so that results never depend
//! on the thread count), and only when there is more than one thread and the work pays for
//! handing pieces over — from a non-worker thread every hand-off is a context switch.

use rayon::prelude::*;

/// Whether `work` (multiply-adds, or elements touched) is worth splitting, given the smallest
/// work that gains from it.
pub fn worth(work: usize, min_work: usize) -> bool {
    rayon::current_num_threads() > 1 && work >= min_work
}

/// `f(i, chunk)` for the `len`-sized chunks of `out`, in parallel or in order.
pub fn for_chunks<T: Send>(
    parallel: bool,
    out: &mut [T],
    len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if parallel {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// `[f(0), …, f(n - 1)]`, in parallel or in order.
pub fn map<R: Send>(parallel: bool, n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if parallel {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}
