//! The weight gradient of a stride-1 convolution without im2col. For each kernel position
//! (ki, kj), `dw[:, :, ki, kj] = dy · shift(x)ᵀ`, where `shift(x)` is the zero-padded input seen
//! from offset (ki·dh, kj·dw). Over a *wide* pixel index `p = y·wp + x` (`wp` the padded width)
//! every shift is one strided matrix, so gemm reads both operands where they lie: `dy`
//! transposed to `[p, oc]` (zero in the columns `x ≥ ow`, which do not exist) and the padded
//! input as it is. That replaces an im2col matrix of `c·kh·kw` rows per example, and gemm's
//! transposing copy of it (it packs a matrix whose rows are not contiguous), with a padded copy
//! of the input and a transposed copy of `dy`.

use super::super::gemm::{matmul_col_major, Mat};
use super::{sum_over_examples, with_scratch, Geometry};

/// Where one example's padded input and wide, transposed `dy` lie.
struct Layout {
    /// Padded height and width.
    hp: usize,
    wp: usize,
    /// Pixels of one padded input channel.
    padded_plane: usize,
    /// The padded input, with room for the last shift's reads past the last row.
    padded_len: usize,
    /// Wide output pixels: `oh · wp`.
    wide: usize,
}

impl Layout {
    fn of(g: &Geometry) -> Self {
        let (hp, wp) = (g.height + 2 * g.padding[0], g.width + 2 * g.padding[1]);
        let padded_plane = hp * wp;
        // The last shift of the last channel reads (kw - 1)·dw pixels past its plane; those
        // meet zero rows of dy, but must be in the buffer (and finite).
        let slack = (g.kernel[1] - 1) * g.dilation[1];
        Layout {
            hp,
            wp,
            padded_plane,
            padded_len: g.in_channels * padded_plane + slack,
            wide: g.out_height() * wp,
        }
    }
}

/// Whether [`backward_weight`] applies: stride 1 in both axes.
pub(super) fn applies(g: &Geometry) -> bool {
    g.stride == [1, 1]
}

/// `Σ_examples dy · im2col(x)ᵀ` for a stride-1 convolution, as `w` is laid out.
pub(super) fn backward_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let l = Layout::of(g);
    let (in_len, out_len) = (g.in_len(), g.out_len());
    // Each chunk's sum as [group][ki, kj][c][oc]: column-major blocks gemm writes in place.
    let sum = sum_over_examples(g.batch, g.weight_len(), |examples, acc| {
        with_scratch(l.padded_len + l.wide * g.out_channels, |scratch| {
            let (padded, dy_t) = scratch.split_at_mut(l.padded_len);
            for e in examples {
                pad(g, &l, &x[e * in_len..][..in_len], padded);
                transpose_wide(g, &l, &dy[e * out_len..][..out_len], dy_t);
                accumulate(g, &l, padded, dy_t, acc);
            }
        });
    });
    to_weight_layout(g, &sum)
}

/// `acc[group][ki, kj] += dy_t[:, group]ᵀ · shift(padded)` for one example.
fn accumulate(g: &Geometry, l: &Layout, padded: &[f32], dy_t: &[f32], acc: &mut [f32]) {
    let (cg, ocg) = (g.in_channels / g.groups, g.group_out_channels());
    let [kh, kw] = g.kernel;
    let mut blocks = acc.chunks_exact_mut(cg * ocg);
    for grp in 0..g.groups {
        let dy = Mat {
            data: &dy_t[grp * ocg..],
            rows: ocg,
            cols: l.wide,
            row_stride: 1,
            col_stride: g.out_channels,
        };
        for ki in 0..kh {
            for kj in 0..kw {
                let shift = ki * g.dilation[0] * l.wp + kj * g.dilation[1];
                let x = Mat {
                    data: &padded[grp * cg * l.padded_plane + shift..],
                    rows: l.wide,
                    cols: cg,
                    row_stride: 1,
                    col_stride: l.padded_plane,
                };
                let block = blocks.next().expect("one block per group and position");
                matmul_col_major(block, dy, x, true);
            }
        }
    }
}

/// One example's input, zero-padded, into `out` (`[c, hp, wp]`, then zeros).
fn pad(g: &Geometry, l: &Layout, x: &[f32], out: &mut [f32]) {
    let [ph, pw] = g.padding;
    out.fill(0.0);
    for (plane, padded) in x
        .chunks_exact(g.height * g.width)
        .zip(out.chunks_exact_mut(l.padded_plane))
    {
        for (row, dst) in plane
            .chunks_exact(g.width)
            .zip(padded[ph * l.wp..].chunks_exact_mut(l.wp))
        {
            dst[pw..pw + g.width].copy_from_slice(row);
        }
    }
    debug_assert_eq!(l.hp * l.wp, l.padded_plane);
}

/// One example's `dy` (`[oc, oh, ow]`) as `[oh · wp, oc]`, zero where `x ≥ ow`. Row by row,
/// so that the reads run along `dy` and the scattered writes stay within one row (in L1).
fn transpose_wide(g: &Geometry, l: &Layout, dy: &[f32], out: &mut [f32]) {
    let (oh, ow, oc) = (g.out_height(), g.out_width(), g.out_channels);
    for (y, row) in out.chunks_exact_mut(l.wp * oc).take(oh).enumerate() {
        row[ow * oc..].fill(0.0);
        for (c, plane) in dy.chunks_exact(oh * ow).enumerate() {
            let src = &plane[y * ow..][..ow];
            for (v, dst) in src.iter().zip(row[c..].iter_mut().step_by(oc)) {
                *dst = *v;
            }
        }
    }
}

/// `[group][ki, kj][c][oc]` blocks back to the weight's `[oc, c, kh, kw]`.
fn to_weight_layout(g: &Geometry, acc: &[f32]) -> Vec<f32> {
    let (cg, ocg) = (g.in_channels / g.groups, g.group_out_channels());
    let kk = g.kernel[0] * g.kernel[1];
    let mut w = vec![0.0; acc.len()];
    for grp in 0..g.groups {
        for k in 0..kk {
            let block = &acc[(grp * kk + k) * cg * ocg..][..cg * ocg];
            for c in 0..cg {
                for oc in 0..ocg {
                    w[((grp * ocg + oc) * cg + c) * kk + k] = block[c * ocg + oc];
                }
            }
        }
    }
    w
}
