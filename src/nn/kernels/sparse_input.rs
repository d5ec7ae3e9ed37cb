//! Dense layers whose input is mostly one value, its background: MNIST's blank pixels (after
//! normalisation all `(0 − mean) / std`, about four fifths of an image) or a ReLU's zeros.
//! With `x = c + r`, `r` zero wherever `x` is the background `c`:
//!
//! ```text
//! y  = x · w + b  = r · w + (c · Σᵢ w[i, :] + b)       (w: [inputs, outputs])
//! dw = xᵀ · dy    = rᵀ · dy + c · Σ_batch dy   (the same for every input i)
//! ```
//!
//! so both products visit only the entries that differ from the background. The input
//! gradient (`dy · wᵀ`) does not involve `x` and stays a dense product. Each output value is
//! summed by one thread in a fixed order (entries by ascending index), so results do not
//! depend on the thread count; the operations are adds and multiplies only, so not on AVX2
//! either.

use std::cell::Cell;

use super::dense::Shape;
use super::gemm::Mat;
use super::parallel;
use super::simd::vectorized;
use super::transpose::transpose_split;

/// The largest fraction of the input that may differ from its background for the sparse
/// products to be used. Per multiply-add they cost about 1.6x what dense GEMM does (each
/// entry reads a row of the table from L2; GEMM reuses what it loads from registers), plus
/// the copies (the padded table, the input's transpose): MNIST's first layer (19% of pixels
/// not blank) runs 2.5x faster, a ReLU's output at 40–50% not zero would run no faster.
const MAX_DENSITY: f64 = 0.3;

/// The smallest layer (inputs × outputs) worth it: below it the fixed costs win.
const MIN_WEIGHTS: usize = 4096;

/// Entries looked at before deciding on the background and whether to go on.
const PROBE: usize = 1024;

/// Output columns summed at once: 8 AVX2 registers (4 AVX-512 ones) of running sums.
const LANES: usize = 64;

/// Columns of dw summed for all of a piece's inputs before the next ones, so that those
/// columns of dy (`batch × 64`, 32 KB at batch 128) stay in L1 (measured on MNIST's first
/// layer when dw was summed by output: 64 beat 32, 128 and all 300 by 15–30%).
const GRADIENT_LANES: usize = 64;

/// Rows of w per chunk of the forward product: every example's entries in a chunk are
/// added before the next chunk, so its rows (96 × [`LANES`] columns, 24 KB) are read from L1.
/// Row by row, whole examples at a time, they came from L2: the sums waited on the loads.
const CHUNK: usize = 96;

/// Multiply-adds below which splitting between threads does not pay. From the training loop
/// (on one of rayon's threads, so a hand-off is a work steal) MNIST's first layer at batch
/// 128, ~6M, gains: +11% per step at two threads (bench run; +15–25% in probes).
const MIN_SPLIT: usize = 2 << 20;

/// The entries of `x` (`rows × cols`) that differ from its [`background`], grouped by row,
/// when the layer is large enough and at most [`MAX_DENSITY`] of `x` differs.
fn sparse(s: &Shape, x: &[f32]) -> Option<Entries> {
    let c = background(s, x)?;
    Entries::by_rows(x, s.inputs, c, most_entries(x))
}

/// The same entries as [`sparse`], grouped by column of `x` (input), each column's by
/// ascending row (example): the rows of `xᵀ`, packed as they come.
fn sparse_by_columns(s: &Shape, x: &[f32]) -> Option<Entries> {
    let c = background(s, x)?;
    with_scratch(x.len(), |xt| {
        transpose_split(Mat::new(x, s.batch, s.inputs), xt, s.batch);
        Entries::by_rows(xt, s.batch, c, most_entries(x))
    })
}

/// The most entries of `x` the sparse products take: [`MAX_DENSITY`] of it.
fn most_entries(x: &[f32]) -> usize {
    (MAX_DENSITY * x.len() as f64) as usize
}

/// The background of `x` when the layer is large enough and `x` is not plainly too dense:
/// the commonest of zero and `x`'s first four entries in the first [`PROBE`] entries.
fn background(s: &Shape, x: &[f32]) -> Option<f32> {
    if x.is_empty() || s.inputs * s.outputs < MIN_WEIGHTS {
        return None;
    }
    let probe = &x[..x.len().min(PROBE)];
    let same = |c: f32| probe.iter().filter(|&&v| v == c).count();
    let (c, count) = std::iter::once(0.0)
        .chain(x.iter().take(4).copied())
        .map(|c| (c, same(c)))
        .fold(
            (0.0, 0),
            |best, next| if next.1 > best.1 { next } else { best },
        );
    // Give up early on inputs that are plainly too dense.
    if (probe.len() - count) as f64 > MAX_DENSITY * probe.len() as f64 {
        return None;
    }
    Some(c)
}

/// The entries of a matrix that differ from the background `c`, grouped by row (or by
/// column): group g's are `index[start[g]..start[g + 1]]` (their column, or row) with
/// `value`s `x − c`.
struct Entries {
    c: f32,
    start: Vec<usize>,
    index: Vec<u32>,
    value: Vec<f32>,
}

impl Entries {
    fn group(&self, g: usize) -> (&[u32], &[f32]) {
        let range = self.start[g]..self.start[g + 1];
        (&self.index[range.clone()], &self.value[range])
    }

    /// For each group in `groups`, where its entries of each [`CHUNK`] of indices start, and
    /// its end: `chunks + 1` positions per group, `chunks` = `⌈size / CHUNK⌉`.
    fn chunk_bounds(&self, groups: std::ops::Range<usize>, size: usize) -> Vec<usize> {
        let chunks = size.div_ceil(CHUNK);
        let mut bounds = Vec::with_capacity(groups.len() * (chunks + 1));
        for g in groups {
            let (mut at, end) = (self.start[g], self.start[g + 1]);
            for chunk in 0..chunks {
                bounds.push(at);
                let limit = ((chunk + 1) * CHUNK) as u32;
                while at < end && self.index[at] < limit {
                    at += 1;
                }
            }
            bounds.push(end);
        }
        bounds
    }

    /// By row of `x` (`rows × cols`), or `None` past `most` entries.
    fn by_rows(x: &[f32], cols: usize, c: f32, most: usize) -> Option<Entries> {
        let mut e = Entries {
            c,
            start: Vec::with_capacity(x.len() / cols + 1),
            index: Vec::with_capacity(most + cols + 8),
            value: Vec::with_capacity(most + cols + 8),
        };
        e.start.push(0);
        for row in x.chunks_exact(cols) {
            e.append(row, c);
            if e.index.len() > most {
                return None;
            }
            e.start.push(e.index.len());
        }
        Some(e)
    }

    /// Appends the entries of `row` that differ from `c` (NaN included).
    fn append(&mut self, row: &[f32], c: f32) {
        #[cfg(target_arch = "x86_64")]
        if super::simd::avx2() && std::is_x86_feature_detected!("popcnt") {
            let n = self.index.len();
            self.index.reserve(row.len() + 8);
            self.value.reserve(row.len() + 8);
            // SAFETY: AVX2 and POPCNT are there (checked above); `pack_avx2` writes at most
            // `row.len()` entries plus 8 lanes past the last, within the capacity reserved
            // just above, and returns how many it wrote.
            unsafe {
                let added = pack_avx2(
                    row,
                    c,
                    self.index.as_mut_ptr().add(n),
                    self.value.as_mut_ptr().add(n),
                );
                self.index.set_len(n + added);
                self.value.set_len(n + added);
            }
            return;
        }
        self.append_portable(row, c);
    }

    /// [`Entries::append`] one value at a time: without AVX2, and the reference in tests.
    fn append_portable(&mut self, row: &[f32], c: f32) {
        for (i, &v) in row.iter().enumerate() {
            if v != c {
                self.index.push(i as u32);
                self.value.push(v - c);
            }
        }
    }
}

/// For each 8-bit mask, the positions of its set bits, in order: the lanes to keep.
#[cfg(target_arch = "x86_64")]
const KEEP: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut kept, mut lane) = (0, 0);
        while lane < 8 {
            if mask & (1 << lane) != 0 {
                table[mask][kept] = lane as u32;
                kept += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// Writes the entries of `row` that differ from `c` to `index` and `value`, eight values at
/// a time without a branch: the differing lanes are moved to the front and all eight stored,
/// the count advanced by how many differed. Returns the count.
///
/// # Safety
/// AVX2 and POPCNT must be available, and `index` and `value` writable for `row.len() + 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn pack_avx2(row: &[f32], c: f32, index: *mut u32, value: *mut f32) -> usize {
    use std::arch::x86_64::*;
    let background = _mm256_set1_ps(c);
    let mut lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut n = 0;
    let eights = row.chunks_exact(8);
    let tail = eights.remainder();
    for eight in eights {
        let v = _mm256_loadu_ps(eight.as_ptr());
        let differ = _mm256_cmp_ps::<_CMP_NEQ_UQ>(v, background);
        let mask = _mm256_movemask_ps(differ) as usize;
        let keep = _mm256_loadu_si256(KEEP[mask].as_ptr() as *const __m256i);
        let kept_lanes = _mm256_permutevar8x32_epi32(lanes, keep);
        let kept_values = _mm256_permutevar8x32_ps(_mm256_sub_ps(v, background), keep);
        _mm256_storeu_si256(index.add(n) as *mut __m256i, kept_lanes);
        _mm256_storeu_ps(value.add(n), kept_values);
        n += mask.count_ones() as usize;
        lanes = _mm256_add_epi32(lanes, _mm256_set1_epi32(8));
    }
    for (k, &v) in tail.iter().enumerate() {
        if v != c {
            *index.add(n) = (row.len() - tail.len() + k) as u32;
            *value.add(n) = v - c;
            n += 1;
        }
    }
    n
}

/// Rows of a matrix to add up: `sums[j] += Σₖ value[k] · table[index[k] · stride + col + j]`.
struct Table<'a> {
    table: &'a [f32],
    stride: usize,
}

impl Table<'_> {
    /// Adds the entries `index`, `value` into `sums`, which cover the table's columns from
    /// `col` on: [`LANES`] columns at a time, so the running sums stay in registers. Each sum
    /// adds the entries in their order.
    #[inline(always)]
    fn add(&self, sums: &mut [f32], col: usize, index: &[u32], value: &[f32]) {
        let width = sums.len();
        let mut at = 0;
        while at + LANES <= width {
            self.lanes::<LANES>(&mut sums[at..at + LANES], col + at, index, value);
            at += LANES;
        }
        // What is left, in eights and then the last 1–7 columns.
        let eights = (width - at) / 8 * 8;
        let (rest, tail) = sums[at..].split_at_mut(eights);
        let col = col + at;
        match rest.len() {
            0 => {}
            8 => self.lanes::<8>(rest, col, index, value),
            16 => self.lanes::<16>(rest, col, index, value),
            24 => self.lanes::<24>(rest, col, index, value),
            32 => self.lanes::<32>(rest, col, index, value),
            40 => self.lanes::<40>(rest, col, index, value),
            48 => self.lanes::<48>(rest, col, index, value),
            56 => self.lanes::<56>(rest, col, index, value),
            n => unreachable!("{n} columns are not fewer than LANES in eights"),
        }
        let col = col + eights;
        match tail.len() {
            0 => {}
            1 => self.lanes::<1>(tail, col, index, value),
            2 => self.lanes::<2>(tail, col, index, value),
            3 => self.lanes::<3>(tail, col, index, value),
            4 => self.lanes::<4>(tail, col, index, value),
            5 => self.lanes::<5>(tail, col, index, value),
            6 => self.lanes::<6>(tail, col, index, value),
            7 => self.lanes::<7>(tail, col, index, value),
            n => unreachable!("{n} columns are not fewer than 8"),
        }
    }

    /// Columns `col..col + N` into `sums` (`N` long).
    #[inline(always)]
    fn lanes<const N: usize>(&self, sums: &mut [f32], col: usize, index: &[u32], value: &[f32]) {
        let mut sum: [f32; N] = sums[..N].try_into().expect("N columns");
        for (&i, &v) in index.iter().zip(value) {
            let row: &[f32; N] = self.table[i as usize * self.stride + col..][..N]
                .try_into()
                .expect("N columns");
            for k in 0..N {
                sum[k] = v.mul_add(row[k], sum[k]);
            }
        }
        sums.copy_from_slice(&sum);
    }
}

thread_local! {
    /// A scratch matrix kept between steps: allocating and zeroing a fresh megabyte per call
    /// cost more than the products it held.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `f(scratch)` with this thread's scratch, at least `len` long (contents unspecified). Taken
/// out while `f` runs: a thread waiting in a parallel loop may start another call.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut scratch = SCRATCH.take();
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    let out = f(&mut scratch[..len]);
    SCRATCH.set(scratch);
    out
}

/// `c · Σᵢ w[i, :] + b`: each column's sum in 8 running sums by input (`i mod 8`), added at
/// the end, then the bias — what every example's output starts from. On the way, `w`'s rows
/// are copied into `table`'s ([`padded`]): one pass over the weights for both.
fn base_and_table(
    s: &Shape,
    w: &[f32],
    c: f32,
    bias: Option<&[f32]>,
    table: &mut [f32],
) -> Vec<f32> {
    let mut base = vec![0.0f32; s.outputs];
    if s.outputs == 0 {
        return base;
    }
    let sum = c != 0.0;
    let mut lanes = if sum {
        vec![0.0f32; 8 * s.outputs]
    } else {
        Vec::new()
    };
    let rows = w.chunks_exact(s.outputs);
    let eights = s.inputs / 8 * 8;
    vectorized(
        #[inline(always)]
        || {
            let copies = table.chunks_exact_mut(padded(s.outputs));
            for (i, (row, copy)) in rows.clone().zip(copies).enumerate() {
                copy[..s.outputs].copy_from_slice(row);
                if sum && i < eights {
                    let lane = &mut lanes[(i % 8) * s.outputs..][..s.outputs];
                    lane.iter_mut().zip(row).for_each(|(l, v)| *l += v);
                }
            }
        },
    );
    if sum {
        let rest: Vec<&[f32]> = rows.skip(eights).collect();
        for (j, b) in base.iter_mut().enumerate() {
            let sum: f32 = (0..8)
                .map(|k| lanes[k * s.outputs + j])
                .chain(rest.iter().map(|row| row[j]))
                .sum();
            *b = c * sum;
        }
    }
    for (j, b) in base.iter_mut().enumerate() {
        *b += bias.map_or(0.0, |bias| bias[j]);
    }
    base
}

/// `y = x · w + b` (w `[inputs, outputs]`), or `None` when `x` is not mostly one value (then
/// the dense product is the faster one).
pub fn forward(s: &Shape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Option<Vec<f32>> {
    let entries = sparse(s, x)?;
    with_scratch(s.inputs * padded(s.outputs), |table| {
        let base = base_and_table(s, w, entries.c, bias, table);
        let table = Table {
            table,
            stride: padded(s.outputs),
        };
        Some(forward_sums(s, &entries, &base, &table))
    })
}

/// Rows of a table `width` values long are read as `width.next_multiple_of(16)`: 64 bytes,
/// a cache line, so that no 512-bit load straddles two (with 300 values a row, three loads
/// in four did, and the sparse sums took 20% longer).
fn padded(width: usize) -> usize {
    width.next_multiple_of(16)
}

/// `src`'s rows (`width` long) into `dst`'s, [`padded`]; the padding is left as it is (it never
/// reaches a result: the sums stop at `width`).
fn padded_copy(src: &[f32], width: usize, dst: &mut [f32]) {
    if width == 0 {
        return;
    }
    for (to, from) in dst
        .chunks_exact_mut(padded(width))
        .zip(src.chunks_exact(width))
    {
        to[..width].copy_from_slice(from);
    }
}

/// The forward product's sums: each example's row of `y` from `base`, plus its entries' rows
/// of the table.
fn forward_sums(s: &Shape, entries: &Entries, base: &[f32], table: &Table) -> Vec<f32> {
    let split = parallel::worth(entries.index.len() * s.outputs, MIN_SPLIT);
    // As few pieces as threads: the more examples share a chunk of the table, the more often
    // each of its rows is read from L1.
    let threads = if split {
        rayon::current_num_threads()
    } else {
        1
    };
    let examples = s.batch.div_ceil(threads).max(1);
    // Each row's running sums start from the base (`c · Σ w + b`).
    parallel::build_pieces_from(
        split,
        s.batch * s.outputs,
        examples * s.outputs,
        base,
        |piece, out| {
            let first = piece * examples;
            let rows = out.len() / s.outputs;
            let bounds = entries.chunk_bounds(first..first + rows, s.inputs);
            let chunks = s.inputs.div_ceil(CHUNK);
            vectorized(
                #[inline(always)]
                || {
                    for col in (0..s.outputs).step_by(LANES) {
                        let lanes = (s.outputs - col).min(LANES);
                        for chunk in 0..chunks {
                            for (k, row) in out.chunks_exact_mut(s.outputs).enumerate() {
                                let at = k * (chunks + 1) + chunk;
                                let range = bounds[at]..bounds[at + 1];
                                table.add(
                                    &mut row[col..col + lanes],
                                    col,
                                    &entries.index[range.clone()],
                                    &entries.value[range],
                                );
                            }
                        }
                    }
                },
            );
        },
    )
}

/// Inputs per piece of the weight gradient: two of MNIST's image rows, so that pieces of
/// blank border and of busy centre are spread over the threads.
const GRADIENT_INPUTS: usize = 56;

/// `dw = xᵀ · dy` (`[inputs, outputs]`), or `None` when `x` is not mostly one value.
pub fn backward_weight(s: &Shape, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let entries = sparse_by_columns(s, x)?;
    // c · Σ_batch dy (the bias gradient's sum): where every input's row starts.
    let mut base = vec![0.0f32; s.outputs];
    if entries.c != 0.0 {
        for (b, sum) in base.iter_mut().zip(super::dense::backward_bias(s, dy)) {
            *b = entries.c * sum;
        }
    }
    with_scratch(s.batch * padded(s.outputs), |table| {
        padded_copy(dy, s.outputs, table);
        let table = Table {
            table,
            stride: padded(s.outputs),
        };
        Some(gradient_sums(s, &entries, &base, &table))
    })
}

/// The weight gradient's sums: each input's row of `dw` from `base`, plus its entries' rows
/// of the table (of `dy`).
fn gradient_sums(s: &Shape, entries: &Entries, base: &[f32], table: &Table) -> Vec<f32> {
    let split = parallel::worth(entries.index.len() * s.outputs, MIN_SPLIT);
    // Pieces of inputs (rows of dw); within one, [`GRADIENT_LANES`] columns at a time for
    // all its inputs, so that those columns of dy (`batch × GRADIENT_LANES`) stay in L1.
    parallel::build_pieces_from(
        split,
        s.inputs * s.outputs,
        GRADIENT_INPUTS * s.outputs,
        base,
        |piece, out| {
            let first = piece * GRADIENT_INPUTS;
            vectorized(
                #[inline(always)]
                || {
                    for col in (0..s.outputs).step_by(GRADIENT_LANES) {
                        let lanes = (s.outputs - col).min(GRADIENT_LANES);
                        for (k, row) in out.chunks_exact_mut(s.outputs).enumerate() {
                            let (index, value) = entries.group(first + k);
                            table.add(&mut row[col..col + lanes], col, index, value);
                        }
                    }
                },
            );
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with a tail past the last eight, NaN, infinity, -0.0 (equal to a zero
    /// background) and values next to the background.
    fn rows() -> Vec<(Vec<f32>, f32)> {
        let c = -0.4242;
        let mut a: Vec<f32> = (0..37)
            .map(|i| if i % 3 == 0 { 0.5 + i as f32 } else { c })
            .collect();
        a[5] = f32::NAN;
        a[36] = f32::INFINITY;
        a[7] = c + 1e-7;
        let mut b = vec![0.0f32; 21];
        b[3] = -0.0;
        b[20] = 2.0;
        b[8] = -3.0;
        vec![(a, c), (b, 0.0), (vec![c; 16], c), (vec![], 0.0)]
    }

    #[test]
    fn packing_by_lanes_keeps_what_the_plain_loop_keeps() {
        for (row, c) in rows() {
            let mut fast = Entries::by_rows(&[], 1, c, 0).unwrap();
            fast.append(&row, c);
            let mut plain = Entries::by_rows(&[], 1, c, 0).unwrap();
            plain.append_portable(&row, c);
            assert_eq!(fast.index, plain.index, "{row:?}");
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast.value), bits(&plain.value), "{row:?}");
            for (&i, &v) in plain.index.iter().zip(&plain.value) {
                let x = row[i as usize];
                assert!(x != c, "{x} kept");
                assert_eq!((x - c).to_bits(), v.to_bits());
            }
            let kept = row.iter().filter(|&&v| v != c).count();
            assert_eq!(plain.index.len(), kept);
        }
    }

    #[test]
    fn columns_hold_the_same_entries_by_ascending_row() {
        let s = Shape {
            batch: 7,
            inputs: 100,
            outputs: 50,
        };
        let c = 1.0;
        let x: Vec<f32> = (0..s.batch * s.inputs)
            .map(|k| if k % 5 == 1 { k as f32 } else { c })
            .collect();
        let columns = sparse_by_columns(&s, &x).expect("mostly the background");
        assert_eq!(columns.c, c);
        for i in 0..s.inputs {
            let (index, value) = columns.group(i);
            let want: Vec<(u32, f32)> = (0..s.batch)
                .filter(|r| x[r * s.inputs + i] != c)
                .map(|r| (r as u32, x[r * s.inputs + i] - c))
                .collect();
            let got: Vec<(u32, f32)> = index.iter().copied().zip(value.iter().copied()).collect();
            assert_eq!(got, want, "column {i}");
        }
    }

    #[test]
    fn the_sparse_products_apply_to_mostly_one_value_only() {
        let s = Shape {
            batch: 4,
            inputs: 100,
            outputs: 50,
        };
        let mostly = |c: f32, other: f32| -> Vec<f32> {
            (0..400)
                .map(|k| if k % 5 == 2 { other } else { c })
                .collect()
        };
        assert_eq!(sparse(&s, &mostly(-0.42, 1.0)).map(|e| e.c), Some(-0.42));
        assert_eq!(sparse(&s, &mostly(0.0, 1.0)).map(|e| e.c), Some(0.0));
        // A corner value that is not the background, zeros everywhere else.
        let mut zeros = mostly(0.0, 1.0);
        zeros[0] = 3.0;
        assert_eq!(sparse(&s, &zeros).map(|e| e.c), Some(0.0));
        let dense: Vec<f32> = (0..400).map(|k| k as f32).collect();
        assert!(sparse(&s, &dense).is_none());
        // Sparse as far as the probe looks, dense later: over the budget.
        let long = Shape { batch: 30, ..s };
        let mut late: Vec<f32> = (0..3000)
            .map(|k| if k % 5 == 2 { 1.0 } else { 0.0 })
            .collect();
        assert!(sparse(&long, &late).is_some());
        late[PROBE + 100..].iter_mut().for_each(|v| *v = 2.0);
        assert!(sparse(&long, &late).is_none());
        let small = Shape { outputs: 10, ..s };
        assert!(sparse(&small, &mostly(0.0, 1.0)).is_none());
    }
}
