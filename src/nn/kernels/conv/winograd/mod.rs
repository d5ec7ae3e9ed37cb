//! 3x3 stride-1 convolutions by Winograd's minimal filtering, F(2x2, 3x3) (Lavin & Gray,
//! 2016): each 2x2 output tile comes from a 4x4 input tile through 16 products per channel
//! pair instead of im2col's 36. Per band of tiles (whole examples, or a range of one
//! example's tile rows, sized to stay in L2): the input tiles transformed (`V = Bᵀ d B`,
//! additions only) into 16 matrices `[channels, tiles]`, one GEMM per tile position against
//! the transformed kernel (`U = G g Gᵀ`), and the 2x2 outputs recovered (`Y = Aᵀ M A`). That
//! replaces im2col's nine copies of the input with one deinterleaving copy, and does 2.25x
//! fewer multiply-adds. The weight gradient reuses the input transform:
//! `dU = Σ_tiles (A dY Aᵀ) ⊙ V`, then `Gᵀ dU G`. The transforms run eight tiles at a time in
//! fixed-size lane arrays (vectorized, with AVX2 through `simd::vectorized` where the CPU has
//! it; additions only, so the same bits either way); where the CPU has AVX2, a tile row's
//! whole groups of eight and four tiles go through intrinsics instead (`x86.rs`), and these
//! loops do the rest.
//! Bands and pieces are fixed by the geometry, never by the thread count. The results differ
//! from im2col's in the last bits (other sums); `tests/kernels.rs` bounds the difference.

use super::super::gemm::{matmul, Mat};
use super::super::parallel;
use super::super::simd::vectorized;
use super::{sum_over_examples, with_scratch, Geometry, WEIGHT_CHUNK};

mod x86;

/// Tiles transformed together (one vector of eight f32).
const LANES: usize = 8;
type Lanes = [f32; LANES];

/// Fewer channels make each of the 16 products too thin for gemm; im2col (depth 9·c) wins.
const MIN_CHANNELS: usize = 8;

/// Transformed inputs and products (floats) one band of tiles may take: both stay in L2
/// between the transforms and the GEMMs that read and write them.
const BAND_FLOATS: usize = 96 * 1024;

/// Tiles per band at least, so that each GEMM has enough rows to amortise its call.
const MIN_BAND_TILES: usize = 32;

/// Whether [`forward`] computes this convolution.
pub(super) fn applies(g: &Geometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.padding.iter().all(|&p| p <= 2)
        && g.in_channels >= MIN_CHANNELS
        && g.out_channels >= MIN_CHANNELS
}

/// Whether [`backward_weight`] computes this convolution's weight gradient.
/// Wherever the forward pass applies: since the transforms went to intrinsics (`x86.rs`) this
/// beats the shifted products at every width (one thread, 128 examples at 32x32: 8 channels
/// 2.0 against 10.8 ms, 16 channels 5.9 against 7.8; at 8x8 and 16 channels 0.63 against
/// 0.59, the one loss). Before, shifted products won below 32 channels.
pub(super) fn applies_to_weight_gradient(g: &Geometry) -> bool {
    applies(g)
}

/// How one example's output is cut into 2x2 tiles, and how its input is kept: zero-padded to
/// whole tiles, each row split into even and odd columns so that tile `tx`'s four columns are
/// `even[tx], odd[tx], even[tx + 1], odd[tx + 1]` — contiguous across tiles.
#[derive(Clone, Copy)]
struct Tiles {
    /// Tile rows and columns.
    rows: usize,
    cols: usize,
    /// Length of one even or odd padded row: tile columns rounded up to whole lane groups,
    /// plus one group for the reads at `tx + 1`.
    half_row: usize,
    /// Examples per piece of the output (one piece per task), and tile rows per band (the
    /// tiles transformed and multiplied together): a band is either whole examples or a
    /// range of one example's tile rows, whichever fits `BAND_FLOATS`.
    examples: usize,
    band_rows: usize,
}

impl Tiles {
    fn of(g: &Geometry) -> Self {
        let (rows, cols) = (g.out_height().div_ceil(2), g.out_width().div_ceil(2));
        let target = (BAND_FLOATS / (16 * (g.in_channels + g.out_channels))).max(MIN_BAND_TILES);
        let per_example = (rows * cols).max(1);
        let (examples, band_rows) = if per_example >= target {
            (1, (target / cols.max(1)).clamp(1, rows.max(1)))
        } else {
            (target.div_ceil(per_example).clamp(1, g.batch.max(1)), rows)
        };
        Tiles {
            rows,
            cols,
            half_row: cols.next_multiple_of(LANES) + LANES,
            examples,
            band_rows,
        }
    }
    /// One channel's padded input: `2·rows + 2` padded rows, each an even and an odd half.
    fn padded_len(&self) -> usize {
        (2 * self.rows + 2) * 2 * self.half_row
    }
    /// One channel's output gradient, as [`Tiles::padded_len`]: `2·rows` rows.
    fn grad_padded_len(&self) -> usize {
        2 * self.rows * 2 * self.half_row
    }
}

/// A band: tile rows `rows` of each example in a piece.
type Band = std::ops::Range<usize>;

/// `y = conv(x, w) + bias` for a convolution [`applies`] accepts; shapes as [`super::forward`].
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let t = Tiles::of(g);
    let u = transform_kernel(g, w);
    let (c, k) = (g.in_channels, g.out_channels);
    let split = parallel::worth(g.batch.div_ceil(t.examples), 2);
    let piece = t.examples * g.out_len();
    parallel::build_pieces(split, g.batch * g.out_len(), piece, |i, y| {
        let n = y.len() / g.out_len();
        let x = &x[i * t.examples * g.in_len()..][..n * g.in_len()];
        let most = n * t.band_rows * t.cols;
        let (v_len, m_len) = (16 * spread(c * most), 16 * spread(k * most));
        // `+ LANES`: the output transform reads whole lane groups past the last tile.
        with_scratch(t.padded_len() + v_len + m_len + LANES, |scratch| {
            let (padded, rest) = scratch.split_at_mut(t.padded_len());
            let (v, m) = rest.split_at_mut(v_len);
            for first in (0..t.rows).step_by(t.band_rows) {
                let band = first..(first + t.band_rows).min(t.rows);
                let tiles = n * band.len() * t.cols;
                vectorized(
                    #[inline(always)]
                    || transform_input(g, &t, &band, x, padded, v),
                );
                let (v_stride, m_stride) = (spread(c * tiles), spread(k * tiles));
                for xi in 0..16 {
                    let u = Mat::new(&u[xi * k * c..][..k * c], k, c);
                    let v = Mat::new(&v[xi * v_stride..][..c * tiles], c, tiles);
                    matmul(&mut m[xi * m_stride..][..k * tiles], u, v, false);
                }
                vectorized(
                    #[inline(always)]
                    || transform_output(g, &t, &band, m, bias, y),
                );
            }
        })
    })
}

/// `Σ_examples dy · im2col(x)ᵀ` for a convolution [`applies_to_weight_gradient`] accepts, as
/// `w` is laid out.
/// Forward, `Y = Aᵀ (U ⊙ V) A` per tile; so the gradient of `U` is `Σ_tiles (A dY Aᵀ) ⊙ V` —
/// 16 products `[out, tiles] · [tiles, in]` over the same transformed input tiles — and the
/// kernel's is `Gᵀ dU G`. Examples are summed in fixed chunks, then the chunks in order.
pub(super) fn backward_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let t = Tiles::of(g);
    let (c, k) = (g.in_channels, g.out_channels);
    let group = t.examples.min(WEIGHT_CHUNK);
    let most = group * t.band_rows * t.cols;
    let (v_len, dm_len) = (16 * spread(c * most), 16 * spread(k * most));
    let grad_len = t.grad_padded_len();
    let du = sum_over_examples(g.batch, 16 * k * c, |examples, du| {
        with_scratch(t.padded_len() + grad_len + v_len + dm_len, |scratch| {
            let (padded, rest) = scratch.split_at_mut(t.padded_len());
            let (grad_padded, rest) = rest.split_at_mut(grad_len);
            let (v, dm) = rest.split_at_mut(v_len);
            for at in examples.clone().step_by(group) {
                let m = group.min(examples.end - at);
                let xs = &x[at * g.in_len()..][..m * g.in_len()];
                let dys = &dy[at * g.out_len()..][..m * g.out_len()];
                for top in (0..t.rows).step_by(t.band_rows) {
                    let band = top..(top + t.band_rows).min(t.rows);
                    let tiles = m * band.len() * t.cols;
                    vectorized(
                        #[inline(always)]
                        || {
                            transform_input(g, &t, &band, xs, padded, v);
                            transform_gradient(g, &t, &band, dys, grad_padded, dm);
                        },
                    );
                    let (v_stride, dm_stride) = (spread(c * tiles), spread(k * tiles));
                    for xi in 0..16 {
                        let dm = Mat::new(&dm[xi * dm_stride..][..k * tiles], k, tiles);
                        let v = Mat::new(&v[xi * v_stride..][..c * tiles], c, tiles);
                        matmul(&mut du[xi * k * c..][..k * c], dm, v.t(), true);
                    }
                }
            }
        });
    });
    kernel_gradient(g, &du)
}

/// `Gᵀ dU G` for every (output, input) channel pair: `[out, in, 3, 3]` from 16 matrices
/// `[out, in]`.
fn kernel_gradient(g: &Geometry, du: &[f32]) -> Vec<f32> {
    let pairs = g.in_channels * g.out_channels;
    let mut dw = vec![0.0; 9 * pairs];
    for (pair, out) in dw.chunks_exact_mut(9).enumerate() {
        let d = |i: usize, j: usize| du[(4 * i + j) * pairs + pair];
        // Gᵀ's rows are [1, ½, ½, 0], [0, ½, -½, 0], [0, ½, ½, 1]: on the columns of each
        // row of dU, then on the rows of the result.
        let cols = |i: usize| {
            let (a, b, c, e) = (d(i, 0), d(i, 1), d(i, 2), d(i, 3));
            [a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + e]
        };
        let r = [cols(0), cols(1), cols(2), cols(3)];
        for j in 0..3 {
            out[j] = r[0][j] + 0.5 * (r[1][j] + r[2][j]);
            out[3 + j] = 0.5 * (r[1][j] - r[2][j]);
            out[6 + j] = 0.5 * (r[1][j] + r[2][j]) + r[3][j];
        }
    }
    dw
}

/// The output gradient's 2x2 tiles of a band, `A dY Aᵀ`, into `dm` as 16 matrices
/// `[out channel, tile]` (laid out as [`transform_input`]'s). `padded` holds one channel's
/// gradient rows split into even and odd columns, zero past the output's edges.
#[inline(always)]
fn transform_gradient(
    g: &Geometry,
    t: &Tiles,
    band: &Band,
    dy: &[f32],
    padded: &mut [f32],
    dm: &mut [f32],
) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let per_example = band.len() * t.cols;
    let tiles = dy.len() / g.out_len() * per_example;
    let stride = spread(g.out_channels * tiles);
    let row_len = 2 * t.half_row;
    padded.fill(0.0);
    for (e, example) in dy.chunks_exact(g.out_len()).enumerate() {
        for (k, channel) in example.chunks_exact(oh * ow).enumerate() {
            let rows = channel.chunks_exact(ow).enumerate();
            for (y, row) in rows.take((2 * band.end).min(oh)).skip(2 * band.start) {
                let (even, odd) = padded[y * row_len..][..row_len].split_at_mut(t.half_row);
                deinterleave(row, even, odd);
            }
            for ty in band.clone() {
                let first = e * per_example + (ty - band.start) * t.cols;
                let rows = &padded[2 * ty * row_len..][..2 * row_len];
                let at = k * tiles + first;
                let done = x86::gradient_row(rows, t.half_row, t.cols, dm, at, stride);
                let (top, bottom) = rows.split_at(row_len);
                for tx in (done..t.cols).step_by(LANES) {
                    // The tile [[a, b], [c, d]]: A's rows are [1, 0], [1, 1], [1, -1], [0, -1].
                    let (a, b) = (load(top, tx), load(top, t.half_row + tx));
                    let (c, d) = (load(bottom, tx), load(bottom, t.half_row + tx));
                    let zero = [0.0; LANES];
                    let rows = [[a, b], [add(a, c), add(b, d)], [sub(a, c), sub(b, d)]];
                    let rows = [rows[0], rows[1], rows[2], [sub(zero, c), sub(zero, d)]];
                    let n = LANES.min(t.cols - tx);
                    for (i, [p, q]) in rows.into_iter().enumerate() {
                        let values = [p, add(p, q), sub(p, q), sub(zero, q)];
                        for (j, lanes) in values.iter().enumerate() {
                            let xi = 4 * i + j;
                            store(&mut dm[xi * stride + k * tiles + first + tx..], lanes, n);
                        }
                    }
                }
            }
        }
    }
}

/// The distance between two of the 16 matrices of transformed tiles or products, for
/// matrices of `len` values: never a multiple of 4 KiB, where all 16 streams the transforms
/// read or write would fall into the same L1 cache set (and evict each other), but 256 bytes
/// past one.
fn spread(len: usize) -> usize {
    len.next_multiple_of(1024) + 64
}

/// `U = G g Gᵀ` for every (output, input) channel pair, as 16 matrices `[out, in]`.
fn transform_kernel(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let (c, k) = (g.in_channels, g.out_channels);
    let mut u = vec![0.0; 16 * k * c];
    for (pair, kernel) in w.chunks_exact(9).enumerate() {
        // G g: the kernel's rows combined; then the same on the columns of the result.
        let r = |i: usize| [kernel[3 * i], kernel[3 * i + 1], kernel[3 * i + 2]];
        let rows = [
            r(0),
            half_sums(r(0), r(1), r(2)),
            half_diffs(r(0), r(1), r(2)),
            r(2),
        ];
        for (i, row) in rows.iter().enumerate() {
            let [a, b, cc] = *row;
            let cols = [a, 0.5 * (a + b + cc), 0.5 * (a - b + cc), cc];
            for (j, value) in cols.into_iter().enumerate() {
                u[(4 * i + j) * k * c + pair] = value;
            }
        }
    }
    u
}

fn half_sums(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [f32; 3] {
    std::array::from_fn(|i| 0.5 * (a[i] + b[i] + c[i]))
}

fn half_diffs(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [f32; 3] {
    std::array::from_fn(|i| 0.5 * (a[i] - b[i] + c[i]))
}

/// The input tiles of a chunk, `V = Bᵀ d B`, into `v` as 16 matrices `[channel, tile]`
/// (tile = example · tiles per example + tile row · tile columns + tile column).
#[inline(always)]
fn transform_input(
    g: &Geometry,
    t: &Tiles,
    band: &Band,
    x: &[f32],
    padded: &mut [f32],
    v: &mut [f32],
) {
    let plane = g.height * g.width;
    let per_example = band.len() * t.cols;
    let tiles = x.len() / (g.in_channels * plane) * per_example;
    let stride = spread(g.in_channels * tiles);
    let [ph, pw] = g.padding;
    // The input rows the band's tiles read (padded rows 2·first .. 2·last + 4).
    let y_from = (2 * band.start).saturating_sub(ph);
    let y_to = (2 * band.end + 2).saturating_sub(ph).min(g.height);
    // Every channel fills the same positions: the padding stays zero from here on.
    padded.fill(0.0);
    for (e, example) in x.chunks_exact(g.in_channels * plane).enumerate() {
        for (c, channel) in example.chunks_exact(plane).enumerate() {
            let rows = channel.chunks_exact(g.width).enumerate();
            for (y, row) in rows.take(y_to).skip(y_from) {
                let dst = &mut padded[(y + ph) * 2 * t.half_row..][..2 * t.half_row];
                let (even, odd) = dst.split_at_mut(t.half_row);
                // Input columns 2i and 2i + 1 lie at padded columns 2i + pw and 2i + 1 + pw.
                if pw % 2 == 0 {
                    deinterleave(row, &mut even[pw / 2..], &mut odd[pw / 2..]);
                } else {
                    deinterleave(row, &mut odd[pw / 2..], &mut even[pw / 2 + 1..]);
                }
            }
            for ty in band.clone() {
                let first = e * per_example + (ty - band.start) * t.cols;
                let rows = &padded[2 * ty * 2 * t.half_row..][..8 * t.half_row];
                let at = c * tiles + first;
                let done = x86::input_row(rows, t.half_row, t.cols, v, at, stride);
                for tx in (done..t.cols).step_by(LANES) {
                    let d = load_tile_lanes(padded, t, ty, tx);
                    let out = input_tile(&d);
                    let n = LANES.min(t.cols - tx);
                    for (xi, lanes) in out.iter().enumerate() {
                        store(&mut v[xi * stride + c * tiles + first + tx..], lanes, n);
                    }
                }
            }
        }
    }
}

/// `first[i] = row[2i]` and `second[i] = row[2i + 1]`: sixteen values at a time by AVX2
/// shuffles where the CPU has them (the compiler makes one insert per value of the plain loop).
#[inline(always)]
fn deinterleave(row: &[f32], first: &mut [f32], second: &mut [f32]) {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    if super::super::simd::avx2() {
        let blocks = row.len() / 16;
        assert!(first.len() >= 8 * blocks && second.len() >= 8 * blocks);
        // SAFETY: AVX2 is there (checked above); each block reads row[16b..16b + 16] and
        // writes [8b..8b + 8] of both halves, in bounds by the assert.
        unsafe {
            deinterleave_avx2(
                row.as_ptr(),
                first.as_mut_ptr(),
                second.as_mut_ptr(),
                blocks,
            )
        };
        at = 16 * blocks;
    }
    for (i, v) in row.iter().enumerate().skip(at) {
        if i % 2 == 0 {
            first[i / 2] = *v;
        } else {
            second[i / 2] = *v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn deinterleave_avx2(row: *const f32, first: *mut f32, second: *mut f32, blocks: usize) {
    use std::arch::x86_64::*;
    for b in 0..blocks {
        let lo = _mm256_loadu_ps(row.add(16 * b));
        let hi = _mm256_loadu_ps(row.add(16 * b + 8));
        // Per 128-bit lane: [lo0 lo2 hi0 hi2] (even) and [lo1 lo3 hi1 hi3] (odd); then the
        // 64-bit quarters reordered to put lo's before hi's.
        let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
        let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
        const ORDER: i32 = 0b11_01_10_00;
        let even = _mm256_castpd_ps(_mm256_permute4x64_pd::<ORDER>(_mm256_castps_pd(even)));
        let odd = _mm256_castpd_ps(_mm256_permute4x64_pd::<ORDER>(_mm256_castps_pd(odd)));
        _mm256_storeu_ps(first.add(8 * b), even);
        _mm256_storeu_ps(second.add(8 * b), odd);
    }
}

/// `d[i][j]`: row `i`, column `j` of the 4x4 input tiles `tx..tx + LANES` in tile row `ty`.
#[inline(always)]
fn load_tile_lanes(padded: &[f32], t: &Tiles, ty: usize, tx: usize) -> [[Lanes; 4]; 4] {
    let mut d = [[[0.0; LANES]; 4]; 4];
    for (i, lanes) in d.iter_mut().enumerate() {
        let row = &padded[(2 * ty + i) * 2 * t.half_row..][..2 * t.half_row];
        let (even, odd) = row.split_at(t.half_row);
        *lanes = [
            load(even, tx),
            load(odd, tx),
            load(even, tx + 1),
            load(odd, tx + 1),
        ];
    }
    d
}

/// `Bᵀ d B` lane by lane, as 16 values in row-major order.
#[inline(always)]
fn input_tile(d: &[[Lanes; 4]; 4]) -> [Lanes; 16] {
    // Bᵀ's rows on the columns of each row, then on the rows.
    let b = |r: &[Lanes; 4]| {
        [
            sub(r[0], r[2]),
            add(r[1], r[2]),
            sub(r[2], r[1]),
            sub(r[1], r[3]),
        ]
    };
    let x = [b(&d[0]), b(&d[1]), b(&d[2]), b(&d[3])];
    let mut v = [[0.0; LANES]; 16];
    for j in 0..4 {
        v[j] = sub(x[0][j], x[2][j]);
        v[4 + j] = add(x[1][j], x[2][j]);
        v[8 + j] = sub(x[2][j], x[1][j]);
        v[12 + j] = sub(x[1][j], x[3][j]);
    }
    v
}

/// The 2x2 outputs of a chunk, `Y = Aᵀ M A` (+ bias), from `m`'s 16 matrices
/// `[out channel, tile]` into `y` (`[examples, out channels, oh, ow]`).
#[inline(always)]
fn transform_output(
    g: &Geometry,
    t: &Tiles,
    band: &Band,
    m: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let per_example = band.len() * t.cols;
    let tiles = y.len() / g.out_len() * per_example;
    let stride = spread(g.out_channels * tiles);
    for (e, example) in y.chunks_exact_mut(g.out_len()).enumerate() {
        for (k, channel) in example.chunks_exact_mut(oh * ow).enumerate() {
            let b = bias.map_or(0.0, |b| b[k]);
            for ty in band.clone() {
                let first = e * per_example + (ty - band.start) * t.cols;
                let (top, rest) = channel[2 * ty * ow..].split_at_mut(ow);
                let bottom = (2 * ty + 1 < oh).then(|| &mut rest[..ow]);
                let done = x86::output_row(m, k * tiles + first, stride, b, top, bottom);
                for tx in (done..t.cols).step_by(LANES) {
                    let mut tile = [[0.0; LANES]; 16];
                    for (xi, lanes) in tile.iter_mut().enumerate() {
                        *lanes = load(m, xi * stride + k * tiles + first + tx);
                    }
                    let [top, bottom] = output_tile(&tile, b);
                    let width = (2 * LANES).min(ow - 2 * tx);
                    store(&mut channel[2 * ty * ow + 2 * tx..], &top, width);
                    if 2 * ty + 1 < oh {
                        store(&mut channel[(2 * ty + 1) * ow + 2 * tx..], &bottom, width);
                    }
                }
            }
        }
    }
}

/// `Aᵀ M A + bias` lane by lane: the tiles' two output rows, each with the tiles' two columns
/// interleaved as they lie in the output.
#[inline(always)]
fn output_tile(m: &[Lanes; 16], bias: f32) -> [[f32; 2 * LANES]; 2] {
    // Aᵀ's rows on the rows of M (per column j), then on the columns.
    let mut s = [[0.0; LANES]; 4];
    let mut d = [[0.0; LANES]; 4];
    for j in 0..4 {
        s[j] = add(add(m[j], m[4 + j]), m[8 + j]);
        d[j] = sub(sub(m[4 + j], m[8 + j]), m[12 + j]);
    }
    let row = |r: &[Lanes; 4]| {
        let left = add(add(r[0], r[1]), r[2]);
        let right = sub(sub(r[1], r[2]), r[3]);
        let mut out = [0.0; 2 * LANES];
        for i in 0..LANES {
            out[2 * i] = left[i] + bias;
            out[2 * i + 1] = right[i] + bias;
        }
        out
    };
    [row(&s), row(&d)]
}

/// `LANES` values from `from`, as one vector load.
#[inline(always)]
fn load(s: &[f32], from: usize) -> Lanes {
    let mut lanes = [0.0; LANES];
    lanes.copy_from_slice(&s[from..from + LANES]);
    lanes
}

/// The first `n` of `values` to the start of `dst`, in fixed-size copies of eight and four
/// (vector stores; a copy of variable length would be a call to memmove).
#[inline(always)]
fn store<const N: usize>(dst: &mut [f32], values: &[f32; N], n: usize) {
    let dst = &mut dst[..n];
    let mut at = 0;
    while at + 8 <= n {
        dst[at..at + 8].copy_from_slice(&values[at..at + 8]);
        at += 8;
    }
    if at + 4 <= n {
        dst[at..at + 4].copy_from_slice(&values[at..at + 4]);
        at += 4;
    }
    for (d, v) in dst[at..].iter_mut().zip(&values[at..n]) {
        *d = *v;
    }
}

#[inline(always)]
fn add(mut a: Lanes, b: Lanes) -> Lanes {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
    a
}

#[inline(always)]
fn sub(mut a: Lanes, b: Lanes) -> Lanes {
    for (a, b) in a.iter_mut().zip(b) {
        *a -= b;
    }
    a
}
