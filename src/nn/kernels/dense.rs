//! Dense layers on the CPU: `y = x · w + b` (w `[inputs, outputs]`) and its gradients as
//! strided GEMMs, with no transposed copy of an operand (flex's matmul makes transposed
//! operands contiguous first); only a narrowing layer's weight gradient is transposed after.
//! Rows of the output are split into fixed blocks, and a forward product of one block into
//! fixed pieces of columns, that run in parallel.

use super::gemm::{matmul, Mat};
use super::parallel;
use super::transpose::transpose;

/// Output rows per block: fixed, so the results never depend on the thread count (gemm's
/// sums for a block of fewer rows can differ in the last bit). As many as a typical batch:
/// gemm packs the transposed operand (the weights, in the forward pass) once per block, and
/// with 32-row blocks that packing was a fifth of a LeNet step at batch 128.
const BLOCK: usize = 128;

/// Output columns per piece of a forward product that is one block of rows: fixed, like the
/// blocks. LeNet-300-100's largest product (batch 60, 784 → 300) is one block of rows; in two
/// pieces of columns a second thread takes half of it (+20–30% per step at two threads in
/// short alternating probes, not seen in a bench run; ~−3% at one, where each piece packs the
/// input again).
const COLUMNS: usize = 160;

/// The smallest product (multiply-adds) handed to more than one thread. From the training
/// loop, which runs on one of rayon's threads, a hand-off is a work steal: LeNet's 14M
/// multiply-add products gain from a second thread (from any other thread, each hand-off
/// put the caller to sleep and they did not).
const MIN_SPLIT: usize = 4 << 20;

/// `[batch, inputs] → [batch, outputs]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// Products of a single block of rows with at least this many multiply-adds are cut into two
/// halves of rows, so that a second thread can take one: LeNet-300-100's 300 → 100 products
/// at batch 128 (3.8M each, a quarter of a step) ran on one thread otherwise. Halves give the
/// same sums as the whole block here (probed on LeNet's products at batch 60 and 128: every
/// bit equal), and are fixed by the shape alone, like the blocks.
const HALVES_FROM: usize = 2 << 20;

/// `dst (rows × cols, row-major) = a · b`, block of rows by block of rows.
fn blocked(dst: &mut [f32], cols: usize, a: Mat, b: Mat) {
    if cols == 0 {
        return;
    }
    let work = dst.len() * a.cols;
    let rows = dst.len() / cols;
    let (piece, min_split) = if rows <= BLOCK && work >= HALVES_FROM {
        (rows.div_ceil(2), HALVES_FROM)
    } else {
        (BLOCK, MIN_SPLIT)
    };
    let split = parallel::worth(work, min_split);
    parallel::for_chunks(split, dst, piece * cols, |i, out| {
        let rows = out.len() / cols;
        let a = Mat {
            data: &a.data[i * piece * a.row_stride..],
            rows,
            ..a
        };
        matmul(out, a, b, false);
    });
}

/// `y = x · w + b`: x `[batch, inputs]`, w `[inputs, outputs]`.
pub fn forward(s: &Shape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let work = s.batch * s.outputs * s.inputs;
    let mut y = if s.batch <= BLOCK && s.outputs > COLUMNS && work >= MIN_SPLIT {
        by_columns(s, x, w)
    } else {
        let mut y = vec![0.0; s.batch * s.outputs];
        let x = Mat::new(x, s.batch, s.inputs);
        blocked(&mut y, s.outputs, x, Mat::new(w, s.inputs, s.outputs));
        y
    };
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(s.outputs.max(1)) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
    y
}

/// `x · w` in pieces of [`COLUMNS`] outputs, each a product of its own (in parallel where
/// worth it), then laid side by side.
fn by_columns(s: &Shape, x: &[f32], w: &[f32]) -> Vec<f32> {
    let x = Mat::new(x, s.batch, s.inputs);
    let pieces = s.outputs.div_ceil(COLUMNS);
    let split = parallel::worth(s.batch * s.outputs * s.inputs, MIN_SPLIT);
    let parts = parallel::map(split, pieces, |j| {
        let columns = j * COLUMNS..((j + 1) * COLUMNS).min(s.outputs);
        // w's columns `columns`: rows of w, `outputs` apart.
        let w = Mat {
            data: &w[columns.start..],
            rows: s.inputs,
            cols: columns.len(),
            row_stride: s.outputs,
            col_stride: 1,
        };
        let mut part = vec![0.0; s.batch * columns.len()];
        matmul(&mut part, x, w, false);
        part
    });
    let mut y = vec![0.0; s.batch * s.outputs];
    for (j, part) in parts.iter().enumerate() {
        let width = part.len() / s.batch.max(1);
        let rows = y.chunks_exact_mut(s.outputs).zip(part.chunks_exact(width));
        for (row, piece) in rows {
            row[j * COLUMNS..j * COLUMNS + width].copy_from_slice(piece);
        }
    }
    y
}

/// `dx = dy · wᵀ`.
pub fn backward_input(s: &Shape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; s.batch * s.inputs];
    let dy = Mat::new(dy, s.batch, s.outputs);
    blocked(&mut dx, s.inputs, dy, Mat::new(w, s.inputs, s.outputs).t());
    dx
}

/// `dw = xᵀ · dy` (`[inputs, outputs]`). Where the layer narrows, as `dyᵀ · x` and then
/// transposed: gemm's micro-kernel runs along the rows of its output, and LeNet's 300 → 100
/// layer left a quarter of its lanes empty in rows of 100 (gemm's 48-lane kernel went from 5%
/// to 7% of the step's samples); transposing the 30K entries costs less.
pub fn backward_weight(s: &Shape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0; s.inputs * s.outputs];
    let (x, dy) = (
        Mat::new(x, s.batch, s.inputs),
        Mat::new(dy, s.batch, s.outputs),
    );
    if s.inputs <= s.outputs {
        blocked(&mut dw, s.outputs, x.t(), dy);
        return dw;
    }
    let mut by_outputs = vec![0.0; s.outputs * s.inputs];
    blocked(&mut by_outputs, s.inputs, dy.t(), x);
    transpose(
        Mat::new(&by_outputs, s.outputs, s.inputs),
        &mut dw,
        s.outputs,
    );
    dw
}

/// `db = Σ_batch dy`.
pub fn backward_bias(s: &Shape, dy: &[f32]) -> Vec<f32> {
    let mut db = vec![0.0f32; s.outputs];
    for row in dy.chunks_exact(s.outputs.max(1)) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    db
}
