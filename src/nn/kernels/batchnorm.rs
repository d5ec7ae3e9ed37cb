//! Batch norm in training mode on the CPU, directly on `[n, c, m]` (m = pixels per channel):
//! no transposes. Per-channel sums run in parallel over channels and accumulate in f64 in a
//! fixed order; the normalisation runs in parallel over examples. Deterministic whatever the
//! thread count. Every loop is a plain loop over fixed-width lanes, inlined into a function
//! compiled for AVX2 where the CPU has it (`simd::vectorized`): through iterator adapters the
//! sums stayed scalar SSE2 with a branch per element, ~4 ns per element in cache.

use super::parallel;
use super::simd::vectorized;

/// `[batch, channels, pixels]` of a batch-norm input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl Shape {
    fn example(&self) -> usize {
        self.channels * self.pixels
    }
    fn count(&self) -> f64 {
        (self.batch * self.pixels) as f64
    }
}

/// `f(channel)` for every channel, in parallel. Give `f` as an `#[inline(always)]` closure.
fn per_channel(s: &Shape, f: impl Fn(usize) -> [f64; 2] + Sync + Send) -> Vec<[f64; 2]> {
    parallel::map(split(s), s.channels, |c| {
        vectorized(
            #[inline(always)]
            || f(c),
        )
    })
}

/// Channel `c`'s row of example `e`.
#[inline(always)]
fn row<'a>(s: &Shape, t: &'a [f32], e: usize, c: usize) -> &'a [f32] {
    &t[e * s.example() + c * s.pixels..][..s.pixels]
}

/// Whether to split: the work is a few passes over the input.
fn split(s: &Shape) -> bool {
    parallel::worth(s.batch * s.example(), 1 << 16)
}

/// Batch statistics and the normalised output: `(y, mean, biased variance)`; with `relu`, the
/// output goes through a ReLU in the same pass (NaN stays NaN, so divergence still shows).
pub fn forward(
    s: &Shape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = s.count();
    let stats = per_channel(
        s,
        #[inline(always)]
        |c| {
            let mut total = 0.0;
            for e in 0..s.batch {
                total += sum(row(s, x, e, c));
            }
            let mean = total / count;
            let mut squares = 0.0;
            for e in 0..s.batch {
                squares += squared_deviations(row(s, x, e, c), mean);
            }
            [mean, squares / count]
        },
    );
    // y = x * scale + shift, with scale = gamma / sqrt(var + eps), shift = beta - mean * scale.
    let coef: Vec<[f32; 2]> = stats
        .iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&[mean, var], (&g, &b))| {
            let scale = f64::from(g) / (var + eps).sqrt();
            [scale as f32, (f64::from(b) - mean * scale) as f32]
        })
        .collect();
    let y = parallel::build_chunks(split(s), s.batch, s.example(), |i, y| {
        let x = &x[i * s.example()..][..s.example()];
        vectorized(
            #[inline(always)]
            || {
                for ((y, x), &[scale, shift]) in y
                    .chunks_exact_mut(s.pixels)
                    .zip(x.chunks_exact(s.pixels))
                    .zip(&coef)
                {
                    for (y, &x) in y.iter_mut().zip(x) {
                        let v = x * scale + shift;
                        *y = if relu && v < 0.0 { 0.0 } else { v };
                    }
                }
            },
        )
    });
    let mean = stats.iter().map(|s| s[0] as f32).collect();
    let var = stats.iter().map(|s| s[1] as f32).collect();
    (y, mean, var)
}

/// What the backward pass needs from the forward pass: its batch `mean` and biased `var`,
/// `eps`, and its output when it included the ReLU (the gradient passes where that is
/// positive).
pub struct Saved<'a> {
    pub mean: &'a [f32],
    pub var: &'a [f32],
    pub eps: f64,
    pub relu_output: Option<&'a [f32]>,
}

/// Gradients `(dx, dgamma, dbeta)` of the training-mode forward pass.
pub fn backward(
    s: &Shape,
    x: &[f32],
    gamma: &[f32],
    saved: &Saved,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Saved {
        mean,
        var,
        eps,
        relu_output,
    } = *saved;
    // Without a ReLU the output lane is never read: any slice of the right length will do.
    let (relu, out) = (relu_output.is_some(), relu_output.unwrap_or(x));
    let inv_std: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (f64::from(v) + eps).sqrt())
        .collect();
    // Per channel: Σ dy and Σ dy · x̂ = (Σ dy · x − mean · Σ dy) · inv_std.
    let sums = per_channel(
        s,
        #[inline(always)]
        |c| {
            let (mut sd, mut sdx) = (0.0, 0.0);
            for e in 0..s.batch {
                let (dy, x, out) = (row(s, dy, e, c), row(s, x, e, c), row(s, out, e, c));
                let [a, b] = if relu {
                    gradient_sums::<true>(dy, x, out)
                } else {
                    gradient_sums::<false>(dy, x, out)
                };
                (sd, sdx) = (sd + a, sdx + b);
            }
            [sd, (sdx - f64::from(mean[c]) * sd) * inv_std[c]]
        },
    );
    // dx = gamma · inv_std · (dy − Σdy / count − x̂ · Σ(dy·x̂) / count), as dy · a + x · b + c.
    let count = s.count();
    let coef: Vec<[f32; 3]> = (0..s.channels)
        .map(|c| {
            let g = f64::from(gamma[c]) * inv_std[c];
            let [sd, sdx] = sums[c];
            let b = -g * inv_std[c] * sdx / count;
            let c0 = -g * sd / count - b * f64::from(mean[c]);
            [g as f32, b as f32, c0 as f32]
        })
        .collect();
    let dx = parallel::build_chunks(split(s), s.batch, s.example(), |i, dx| {
        let range = i * s.example()..(i + 1) * s.example();
        let (dy, x, out) = (&dy[range.clone()], &x[range.clone()], &out[range]);
        vectorized(
            #[inline(always)]
            || {
                let rows = dx.chunks_exact_mut(s.pixels).zip(
                    dy.chunks_exact(s.pixels)
                        .zip(x.chunks_exact(s.pixels).zip(out.chunks_exact(s.pixels))),
                );
                for ((dx, (dy, (x, out))), &[a, b, c]) in rows.zip(&coef) {
                    for (o, (&d, (&v, &y))) in dx.iter_mut().zip(dy.iter().zip(x.iter().zip(out))) {
                        let d = if !relu || y > 0.0 { d } else { 0.0 };
                        *o = d * a + v * b + c;
                    }
                }
            },
        )
    });
    let dgamma = sums.iter().map(|s| s[1] as f32).collect();
    let dbeta = sums.iter().map(|s| s[0] as f32).collect();
    (dx, dgamma, dbeta)
}

/// Independent f64 accumulators for the sums over a row: the loops vectorize, and the order of
/// additions is still fixed (the same on every run and thread count).
const LANES: usize = 8;

/// `Σ v` over a row.
#[inline(always)]
fn sum(row: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = row.chunks_exact(LANES);
    let mut tail = 0.0;
    for &v in chunks.remainder() {
        tail += f64::from(v);
    }
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] += f64::from(chunk[l]);
        }
    }
    lanes_total(&acc) + tail
}

/// `Σ (v − mean)²` over a row.
#[inline(always)]
fn squared_deviations(row: &[f32], mean: f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = row.chunks_exact(LANES);
    let mut tail = 0.0;
    for &v in chunks.remainder() {
        tail += (f64::from(v) - mean).powi(2);
    }
    for chunk in chunks {
        for l in 0..LANES {
            let d = f64::from(chunk[l]) - mean;
            acc[l] += d * d;
        }
    }
    lanes_total(&acc) + tail
}

/// The lanes' sums added in lane order.
#[inline(always)]
fn lanes_total(acc: &[f64; LANES]) -> f64 {
    let mut total = 0.0;
    for &a in acc {
        total += a;
    }
    total
}

/// `[Σ d, Σ d · x]` over a row, where `d` is `dy` passed through the fused ReLU (if any).
#[inline(always)]
fn gradient_sums<const RELU: bool>(dy: &[f32], x: &[f32], out: &[f32]) -> [f64; 2] {
    let through = |d: f32, y: f32| f64::from(if !RELU || y > 0.0 { d } else { 0.0 });
    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (dc, xc, oc) = (
        dy.chunks_exact(LANES),
        x.chunks_exact(LANES),
        out.chunks_exact(LANES),
    );
    let mut tail = [0.0, 0.0];
    for ((&d, &v), &y) in dc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .zip(oc.remainder())
    {
        let d = through(d, y);
        tail = [tail[0] + d, tail[1] + d * f64::from(v)];
    }
    for ((d, v), y) in dc.zip(xc).zip(oc) {
        for l in 0..LANES {
            let d = through(d[l], y[l]);
            a[l] += d;
            b[l] += d * f64::from(v[l]);
        }
    }
    [lanes_total(&a) + tail[0], lanes_total(&b) + tail[1]]
}
