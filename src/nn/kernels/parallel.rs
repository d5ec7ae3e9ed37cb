//! How the kernels split work between threads: in fixed pieces (so that results never depend
//! on the thread count), and only when there is more than one thread and the work pays for
//! handing pieces over — from a non-worker thread every hand-off is a context switch.

use std::mem::MaybeUninit;

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

/// A vector of `n` chunks of `len` values, chunk `i` made by `f(i, chunk)` (in parallel or in
/// order). Each worker zeroes its own chunk just before `f` writes it, where that costs a pass
/// over cache lines `f` is about to touch, instead of the allocating thread zeroing it all.
pub fn build_chunks(
    parallel: bool,
    n: usize,
    len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    build_pieces(parallel, n * len, len, f)
}

/// A vector of `total` values made by `f(i, piece)` for its `len`-sized pieces (the last one
/// shorter where `len` does not divide `total`), zeroed as in [`build_chunks`].
pub fn build_pieces(
    parallel: bool,
    total: usize,
    len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    build_pieces_from(parallel, total, len, &[0.0], f)
}

/// [`build_pieces`] with each piece starting as `pattern` over and over instead of zeros: rows
/// of sums that start from a base row, without a pass to zero them first. `len` and `total`
/// are multiples of the pattern's length.
pub fn build_pieces_from(
    parallel: bool,
    total: usize,
    len: usize,
    pattern: &[f32],
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    assert!(len > 0 || total == 0, "build_pieces: empty pieces");
    assert!(
        !pattern.is_empty() && len % pattern.len() == 0 && total % pattern.len() == 0,
        "build_pieces_from: pieces of {len} and {total} in all are not rows of {}",
        pattern.len()
    );
    let mut v = Vec::with_capacity(total);
    if total > 0 {
        for_chunks(
            parallel,
            &mut v.spare_capacity_mut()[..total],
            len,
            |i, chunk| {
                if let [value] = pattern {
                    chunk.fill(MaybeUninit::new(*value));
                } else {
                    for part in chunk.chunks_mut(pattern.len()) {
                        for (to, &from) in part.iter_mut().zip(pattern) {
                            *to = MaybeUninit::new(from);
                        }
                    }
                }
                // SAFETY: every element of `chunk` was written just above (`chunk`'s length
                // is a multiple of the pattern's, or the pattern is one value).
                let chunk = unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) };
                f(i, chunk);
            },
        );
    }
    // SAFETY: the pieces cover the first `total` elements, and each was written.
    unsafe { v.set_len(total) };
    v
}
