//! Convolution on the CPU as im2col + GEMM, per example, NCHW, f32: the forward pass and both
//! backward passes; 3x3 stride-1 layers by Winograd's F(2x2, 3x3) instead (`winograd/`),
//! stride-1 weight gradients without im2col (`shifted.rs`). Examples run in parallel (rayon);
//! within one, the `gemm` crate multiplies single-threaded. Every sum has a fixed order whatever the thread count, so results are
//! bit-identical across runs and across `RAYON_NUM_THREADS`.

use std::cell::RefCell;
use std::ops::Range;

use super::gemm::{matmul, Mat};
use super::parallel;

mod shifted;
mod winograd;

/// The shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Geometry {
    pub fn out_height(&self) -> usize {
        out_len(
            self.height,
            self.kernel[0],
            self.stride[0],
            self.padding[0],
            self.dilation[0],
        )
    }
    pub fn out_width(&self) -> usize {
        out_len(
            self.width,
            self.kernel[1],
            self.stride[1],
            self.padding[1],
            self.dilation[1],
        )
    }
    fn in_plane(&self) -> usize {
        self.height * self.width
    }
    fn out_plane(&self) -> usize {
        self.out_height() * self.out_width()
    }
    /// Rows of one group's im2col matrix: input channels per group × kernel positions.
    fn group_rows(&self) -> usize {
        self.in_channels / self.groups * self.kernel[0] * self.kernel[1]
    }
    fn group_out_channels(&self) -> usize {
        self.out_channels / self.groups
    }
    /// A 1x1 convolution with stride 1 and no padding: the input is its own im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
    fn in_len(&self) -> usize {
        self.in_channels * self.in_plane()
    }
    fn out_len(&self) -> usize {
        self.out_channels * self.out_plane()
    }
    fn col_len(&self) -> usize {
        self.groups * self.group_rows() * self.out_plane()
    }
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.group_rows()
    }
}

/// A convolution's output length along one axis.
pub(super) fn out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> usize {
    (input + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
}

/// The output positions `lo..hi` (of `out`) whose input index `o * stride + offset - pad` falls
/// inside `0..input`.
fn valid_range(
    out: usize,
    stride: usize,
    offset: usize,
    pad: usize,
    input: usize,
) -> (usize, usize) {
    let lo = pad.saturating_sub(offset).div_ceil(stride).min(out);
    let hi = (input + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(out);
    (lo, hi.max(lo))
}

/// Lays out one example's patches as columns: row `(c, ki, kj)`, column `(y, x)`.
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let [dh, dw] = g.dilation;
    let mut rows = col.chunks_exact_mut(oh * ow);
    for plane in x.chunks_exact(g.in_plane()) {
        for ki in 0..kh {
            let (y_lo, y_hi) = valid_range(oh, sh, ki * dh, ph, g.height);
            for kj in 0..kw {
                let (x_lo, x_hi) = valid_range(ow, sw, kj * dw, pw, g.width);
                let row = rows.next().expect("im2col: column buffer too small");
                for (y, out) in row.chunks_exact_mut(ow).enumerate() {
                    if y < y_lo || y >= y_hi {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[(y * sh + ki * dh - ph) * g.width..][..g.width];
                    out[..x_lo].fill(0.0);
                    out[x_hi..].fill(0.0);
                    if x_lo == x_hi {
                        continue;
                    }
                    let first = x_lo * sw + kj * dw - pw;
                    if sw == 1 {
                        out[x_lo..x_hi].copy_from_slice(&src[first..first + x_hi - x_lo]);
                    } else {
                        for (o, s) in out[x_lo..x_hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(sw))
                        {
                            *o = *s;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back onto the input pixel it came from.
fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let [dh, dw] = g.dilation;
    let mut rows = col.chunks_exact(oh * ow);
    for plane in dx.chunks_exact_mut(g.in_plane()) {
        for ki in 0..kh {
            let (y_lo, y_hi) = valid_range(oh, sh, ki * dh, ph, g.height);
            for kj in 0..kw {
                let (x_lo, x_hi) = valid_range(ow, sw, kj * dw, pw, g.width);
                let row = rows.next().expect("col2im: column buffer too small");
                if x_lo == x_hi {
                    continue;
                }
                for y in y_lo..y_hi {
                    let src = &row[y * ow..][x_lo..x_hi];
                    let dst = &mut plane[(y * sh + ki * dh - ph) * g.width..][..g.width];
                    let first = x_lo * sw + kj * dw - pw;
                    for (d, s) in dst[first..].iter_mut().step_by(sw).zip(src) {
                        *d += *s;
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Each worker's im2col buffer, kept between calls (a ResNet-20 step needs dozens).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// One example's im2col matrix (the input itself for pointwise convolutions), given to `f`.
fn with_columns<R>(g: &Geometry, x: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    if g.is_pointwise() {
        f(x)
    } else {
        with_scratch(g.col_len(), |col| {
            im2col(g, x, col);
            f(col)
        })
    }
}

/// `y = conv(x, w) + bias`: x `[n, c, h, w]`, w `[oc, c / groups, kh, kw]`, y `[n, oc, oh, ow]`.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    if winograd::applies(g) {
        return winograd::forward(g, x, w, bias);
    }
    let (rows, ocg, plane) = (g.group_rows(), g.group_out_channels(), g.out_plane());
    let split = parallel::worth(g.batch, 2);
    parallel::build_chunks(split, g.batch, g.out_len(), |i, y| {
        let x = &x[i * g.in_len()..][..g.in_len()];
        with_columns(g, x, |col| {
            for grp in 0..g.groups {
                let w = Mat::new(&w[grp * ocg * rows..][..ocg * rows], ocg, rows);
                let col = Mat::new(&col[grp * rows * plane..][..rows * plane], rows, plane);
                matmul(&mut y[grp * ocg * plane..][..ocg * plane], w, col, false);
            }
        });
        if let Some(b) = bias {
            for (out, b) in y.chunks_exact_mut(plane).zip(b) {
                out.iter_mut().for_each(|v| *v += b);
            }
        }
    })
}

/// For stride 1 without dilation, the input gradient is itself a convolution: of `dy` padded
/// by `k - 1 - p`, with the kernel flipped and its channel axes swapped. That runs on the
/// forward pass's GEMM shape instead of a thin product (k = output channels) and a scatter.
fn transposed(g: &Geometry) -> Option<Geometry> {
    let fits =
        g.stride == [1, 1] && g.dilation == [1, 1] && (0..2).all(|i| g.padding[i] < g.kernel[i]);
    fits.then(|| Geometry {
        in_channels: g.out_channels,
        height: g.out_height(),
        width: g.out_width(),
        out_channels: g.in_channels,
        padding: [
            g.kernel[0] - 1 - g.padding[0],
            g.kernel[1] - 1 - g.padding[1],
        ],
        ..*g
    })
}

/// `w` (`[oc, c / groups, kh, kw]`) as the kernel of [`transposed`]: `[c, oc / groups, kh, kw]`,
/// flipped in both spatial axes.
fn flip_transpose(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let (cg, ocg) = (g.in_channels / g.groups, g.group_out_channels());
    let kk = g.kernel[0] * g.kernel[1];
    let mut out = vec![0.0; w.len()];
    for grp in 0..g.groups {
        for oc in 0..ocg {
            for c in 0..cg {
                let src = &w[((grp * ocg + oc) * cg + c) * kk..][..kk];
                let dst = &mut out[((grp * cg + c) * ocg + oc) * kk..][..kk];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    out
}

/// The gradient with respect to the input: a convolution of `dy` where [`transposed`] allows,
/// otherwise `col2im(wᵀ · dy)` per example.
pub fn backward_input(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    if let Some(t) = transposed(g) {
        return forward(&t, dy, &flip_transpose(g, w), None);
    }
    let (rows, ocg, plane) = (g.group_rows(), g.group_out_channels(), g.out_plane());
    let columns = |dcol: &mut [f32], dy: &[f32]| {
        for grp in 0..g.groups {
            let w = Mat::new(&w[grp * ocg * rows..][..ocg * rows], ocg, rows);
            let dy = Mat::new(&dy[grp * ocg * plane..][..ocg * plane], ocg, plane);
            matmul(
                &mut dcol[grp * rows * plane..][..rows * plane],
                w.t(),
                dy,
                false,
            );
        }
    };
    let split = parallel::worth(g.batch, 2);
    parallel::build_chunks(split, g.batch, g.in_len(), |i, dx| {
        let dy = &dy[i * g.out_len()..][..g.out_len()];
        if g.is_pointwise() {
            columns(dx, dy);
        } else {
            with_scratch(g.col_len(), |dcol| {
                columns(dcol, dy);
                col2im(g, dcol, dx);
            });
        }
    })
}

/// Examples whose weight gradients are summed together before the partial sums are added in
/// order. Fixed, so that the order of additions never depends on the thread count.
const WEIGHT_CHUNK: usize = 8;

/// `Σ_examples` of a weight gradient: `add(examples, sum)` adds the gradients of a chunk of
/// `WEIGHT_CHUNK` examples onto `sum` (zeros, `len` long); chunks run in parallel, and their
/// sums are added in chunk order.
fn sum_over_examples(
    batch: usize,
    len: usize,
    add: impl Fn(Range<usize>, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let chunks = batch.div_ceil(WEIGHT_CHUNK);
    let partials: Vec<Vec<f32>> = parallel::map(parallel::worth(chunks, 2), chunks, |i| {
        let first = i * WEIGHT_CHUNK;
        let mut sum = vec![0.0; len];
        add(first..(first + WEIGHT_CHUNK).min(batch), &mut sum);
        sum
    });
    let mut sum = vec![0.0; len];
    for p in partials {
        sum.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    sum
}

/// The gradient with respect to the weights: `Σ_examples dy · im2col(x)ᵀ`.
pub fn backward_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if winograd::applies_to_weight_gradient(g) {
        return winograd::backward_weight(g, x, dy);
    }
    if shifted::applies(g) {
        return shifted::backward_weight(g, x, dy);
    }
    let (rows, ocg, plane) = (g.group_rows(), g.group_out_channels(), g.out_plane());
    sum_over_examples(g.batch, g.weight_len(), |examples, dw| {
        let xs = &x[examples.start * g.in_len()..examples.end * g.in_len()];
        let dys = &dy[examples.start * g.out_len()..examples.end * g.out_len()];
        for (x, dy) in xs
            .chunks_exact(g.in_len())
            .zip(dys.chunks_exact(g.out_len()))
        {
            with_columns(g, x, |col| {
                for grp in 0..g.groups {
                    let dy = Mat::new(&dy[grp * ocg * plane..][..ocg * plane], ocg, plane);
                    let col = Mat::new(&col[grp * rows * plane..][..rows * plane], rows, plane);
                    matmul(&mut dw[grp * ocg * rows..][..ocg * rows], dy, col.t(), true);
                }
            });
        }
    })
}

/// The gradient with respect to the bias: `dy` (`[batch, channels, pixels]`) summed over
/// examples and pixels.
pub fn backward_bias(batch: usize, channels: usize, dy: &[f32]) -> Vec<f32> {
    let plane = dy.len() / (batch * channels).max(1);
    let mut db = vec![0.0f32; channels];
    if plane == 0 {
        return db;
    }
    for example in dy.chunks_exact(channels * plane) {
        for (d, channel) in db.iter_mut().zip(example.chunks_exact(plane)) {
            *d += channel.iter().sum::<f32>();
        }
    }
    db
}
