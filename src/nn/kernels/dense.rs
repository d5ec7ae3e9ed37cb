//! Dense layers on the CPU: `y = x · wᵀ + b` and its gradients as strided GEMMs, so no
//! transposed copy is ever made (flex's matmul makes transposed operands contiguous first).
//! Rows of the output are split into fixed blocks that run in parallel.

use super::gemm::{matmul, Mat};
use super::parallel;

/// Output rows per block: fixed, so the results never depend on the thread count (gemm's
/// sums for a block of fewer rows can differ in the last bit). As many as a typical batch:
/// gemm packs the transposed operand (the weights, in the forward pass) once per block, and
/// with 32-row blocks that packing was a fifth of a LeNet step at batch 128.
const BLOCK: usize = 128;

/// `[batch, inputs] → [batch, outputs]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// `dst (rows × cols, row-major) = a · b`, block of rows by block of rows.
fn blocked(dst: &mut [f32], cols: usize, a: Mat, b: Mat) {
    if cols == 0 {
        return;
    }
    // Measured: LeNet-300-100's largest product (60×784×300, 14M multiply-adds) is faster on
    // one thread than handed to two.
    let split = parallel::worth(dst.len() * a.cols, 64 << 20);
    parallel::for_chunks(split, dst, BLOCK * cols, |i, out| {
        let rows = out.len() / cols;
        let a = Mat {
            data: &a.data[i * BLOCK * a.row_stride..],
            rows,
            ..a
        };
        matmul(out, a, b, false);
    });
}

/// `y = x · wᵀ + b`: x `[batch, inputs]`, w `[outputs, inputs]`.
pub fn forward(s: &Shape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0.0; s.batch * s.outputs];
    let x = Mat::new(x, s.batch, s.inputs);
    let w = Mat::new(w, s.outputs, s.inputs);
    blocked(&mut y, s.outputs, x, w.t());
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(s.outputs.max(1)) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
    y
}

/// `dx = dy · w`.
pub fn backward_input(s: &Shape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; s.batch * s.inputs];
    let dy = Mat::new(dy, s.batch, s.outputs);
    blocked(&mut dx, s.inputs, dy, Mat::new(w, s.outputs, s.inputs));
    dx
}

/// `dw = dyᵀ · x`.
pub fn backward_weight(s: &Shape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0; s.outputs * s.inputs];
    let dy = Mat::new(dy, s.batch, s.outputs).t();
    blocked(&mut dw, s.inputs, dy, Mat::new(x, s.batch, s.inputs));
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
