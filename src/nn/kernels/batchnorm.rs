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
    let mean: Vec<f32> = stats.iter().map(|s| s[0] as f32).collect();
    let var: Vec<f32> = stats.iter().map(|s| s[1] as f32).collect();
    let coef = coefficients(gamma, beta, &mean, &var, eps);
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
    (y, mean, var)
}

/// `[scale, shift]` per channel, `y = x · scale + shift` with `scale = gamma / sqrt(var + eps)`
/// and `shift = beta − mean · scale`: from the f32 statistics the backward pass is given too,
/// so that it recomputes the forward pass's values before the ReLU bit for bit.
fn coefficients(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) -> Vec<[f32; 2]> {
    gamma
        .iter()
        .zip(beta)
        .zip(mean.iter().zip(var))
        .map(|((&g, &b), (&m, &v))| {
            let scale = f64::from(g) / (f64::from(v) + eps).sqrt();
            [scale as f32, (f64::from(b) - f64::from(m) * scale) as f32]
        })
        .collect()
}

/// What the backward pass needs from the forward pass: its batch `mean` and biased `var`,
/// `eps`, and `beta` when it included the ReLU. The gradient passes where the forward pass's
/// value before the ReLU, `x · scale + shift`, was positive: recomputed from `x` rather than
/// read from the output (the backward pass's two passes then read two and three tensors, not
/// three and four).
pub struct Saved<'a> {
    pub mean: &'a [f32],
    pub var: &'a [f32],
    pub eps: f64,
    pub relu_beta: Option<&'a [f32]>,
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
        relu_beta,
    } = *saved;
    // Without a ReLU the coefficients are never used.
    let relu = relu_beta.is_some();
    let relu_coef = relu_beta.map_or_else(
        || vec![[0.0; 2]; s.channels],
        |beta| coefficients(gamma, beta, mean, var, eps),
    );
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
                let (dy, x) = (row(s, dy, e, c), row(s, x, e, c));
                let [a, b] = if relu {
                    gradient_sums::<true>(dy, x, relu_coef[c])
                } else {
                    gradient_sums::<false>(dy, x, relu_coef[c])
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
        let (dy, x) = (&dy[range.clone()], &x[range]);
        vectorized(
            #[inline(always)]
            || {
                let rows = dx
                    .chunks_exact_mut(s.pixels)
                    .zip(dy.chunks_exact(s.pixels).zip(x.chunks_exact(s.pixels)));
                for ((dx, (dy, x)), (&[a, b, c], &[scale, shift])) in
                    rows.zip(coef.iter().zip(&relu_coef))
                {
                    for (o, (&d, &v)) in dx.iter_mut().zip(dy.iter().zip(x)) {
                        let d = if !relu || v * scale + shift > 0.0 {
                            d
                        } else {
                            0.0
                        };
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

/// `[Σ d, Σ d · x]` over a row, where `d` is `dy` passed through the fused ReLU (if any):
/// where `x · scale + shift` (the forward pass's value before it) is positive.
#[inline(always)]
fn gradient_sums<const RELU: bool>(dy: &[f32], x: &[f32], [scale, shift]: [f32; 2]) -> [f64; 2] {
    let through = |d: f32, v: f32| {
        f64::from(if !RELU || v * scale + shift > 0.0 {
            d
        } else {
            0.0
        })
    };
    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (dc, xc) = (dy.chunks_exact(LANES), x.chunks_exact(LANES));
    let mut tail = [0.0, 0.0];
    for (&d, &v) in dc.remainder().iter().zip(xc.remainder()) {
        let d = through(d, v);
        tail = [tail[0] + d, tail[1] + d * f64::from(v)];
    }
    for (d, v) in dc.zip(xc) {
        for l in 0..LANES {
            let d = through(d[l], v[l]);
            a[l] += d;
            b[l] += d * f64::from(v[l]);
        }
    }
    [lanes_total(&a) + tail[0], lanes_total(&b) + tail[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backward pass lets the gradient through where `x · scale + shift > 0`, recomputed
    /// from the saved statistics: that must be exactly where the forward pass's ReLU output is
    /// positive, also for values that land on zero or next to it.
    #[test]
    fn the_recomputed_relu_mask_is_the_forward_pass_s() {
        let s = Shape {
            batch: 2,
            channels: 32,
            pixels: 30,
        };
        // Each channel's values are m − d, m and m + d: its mean is m, where the value before
        // the ReLU is zero up to rounding, and its sign hangs on the last bits of the
        // coefficients.
        let m = |c: usize| 0.1 + 0.37 * c as f32;
        let x: Vec<f32> = (0..s.batch * s.example())
            .map(|i| m(i / s.pixels % s.channels) + [-1.0, 0.0, 1.0][i % 3])
            .collect();
        let gamma: Vec<f32> = (0..s.channels).map(|c| 0.5 + 0.13 * c as f32).collect();
        let beta = vec![0.0; s.channels];
        let (y, mean, var) = forward(&s, &x, &gamma, &beta, 1e-5, true);
        let coef = coefficients(&gamma, &beta, &mean, &var, 1e-5);
        let (mut on, mut off) = (0, 0);
        for e in 0..s.batch {
            for (c, &[scale, shift]) in coef.iter().enumerate() {
                for (&v, &out) in row(&s, &x, e, c).iter().zip(row(&s, &y, e, c)) {
                    let pass = v * scale + shift > 0.0;
                    assert_eq!(pass, out > 0.0, "x {v}, channel {c}, output {out}");
                    if pass {
                        on += 1;
                    } else {
                        off += 1;
                    }
                }
            }
        }
        assert!(
            on > 0 && off > 0,
            "the ReLU passes {on} and stops {off} values"
        );
    }
}
