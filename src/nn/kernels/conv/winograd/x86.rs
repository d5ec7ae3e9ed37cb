//! The transforms' whole groups of tiles in x86 vector intrinsics — eight tiles per AVX
//! register, then four per SSE register — with the same additions in the same order as the
//! lane loops in `super`, so the same bits. Those loops compile to shuffles, inserts and a
//! bounds check per store (ResNet-20's first stage, 16 channels at 32x32: the input transform
//! took 3.1 ms of a 6.6 ms convolution, more than its products), and fill only half their
//! lanes on 8x8 maps. Each function does the whole groups of a tile row and returns how many
//! tiles it did; the lane loops do the rest, and everything where the CPU lacks AVX2 (or a
//! test narrows the lanes to the baseline).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `Bᵀ d B` for tiles `0..done` of a tile row. `rows`: the four padded rows the row's tiles
/// read, each an even half and an odd half of `half` floats; tile `tx`'s value `xi` goes to
/// `v[at + xi · stride + tx]`.
pub(super) fn input_row(
    rows: &[f32],
    half: usize,
    tiles: usize,
    v: &mut [f32],
    at: usize,
    stride: usize,
) -> usize {
    let done = whole_groups(tiles);
    if done == 0 {
        return 0;
    }
    // Tile tx reads columns tx and tx + 1 of each half: tx + 1 + lanes <= tiles + 1 <= half.
    assert!(tiles < half && rows.len() >= 8 * half && at + 15 * stride + done <= v.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `whole_groups` found AVX2; the reads and writes stay inside the slices by the
    // assert.
    unsafe {
        input_groups(rows.as_ptr(), half, done, v.as_mut_ptr().add(at), stride)
    };
    done
}

/// `Aᵀ M A + bias` for tiles `0..done` of a tile row, into the output rows `top` and (where the
/// output has one) `bottom`: tile `tx`'s value `xi` is `m[at + xi · stride + tx]`, its outputs
/// columns `2·tx, 2·tx + 1`. Only groups whose columns all lie in the output.
pub(super) fn output_row(
    m: &[f32],
    at: usize,
    stride: usize,
    bias: f32,
    top: &mut [f32],
    bottom: Option<&mut [f32]>,
) -> usize {
    let done = whole_groups(top.len() / 2);
    if done == 0 {
        return 0;
    }
    assert!(at + 15 * stride + done <= m.len());
    assert!(bottom.as_ref().is_none_or(|b| b.len() == top.len()));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `whole_groups` found AVX2; 2·done <= top.len() = bottom.len(), and m's reads by
    // the assert.
    unsafe {
        let bottom = bottom.map_or(std::ptr::null_mut(), |b| b.as_mut_ptr());
        output_groups(
            m.as_ptr().add(at),
            stride,
            bias,
            top.as_mut_ptr(),
            bottom,
            done,
        )
    };
    done
}

/// `A dY Aᵀ` for tiles `0..done` of a tile row of the output gradient: `rows` its two padded
/// rows (even and odd halves of `half` floats each); tile `tx`'s value `xi` goes to
/// `dm[at + xi · stride + tx]`.
pub(super) fn gradient_row(
    rows: &[f32],
    half: usize,
    tiles: usize,
    dm: &mut [f32],
    at: usize,
    stride: usize,
) -> usize {
    let done = whole_groups(tiles);
    if done == 0 {
        return 0;
    }
    assert!(tiles <= half && rows.len() >= 4 * half && at + 15 * stride + done <= dm.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `whole_groups` found AVX2; the reads and writes stay inside the slices by the
    // assert.
    unsafe {
        gradient_groups(rows.as_ptr(), half, done, dm.as_mut_ptr().add(at), stride)
    };
    done
}

/// The tiles the groups below cover (multiples of eight, then of four), or none without AVX2.
fn whole_groups(tiles: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if super::super::super::simd::avx2() {
        return tiles / 4 * 4;
    }
    let _ = tiles;
    0
}

/// The operations the transforms need, on eight lanes (AVX) or four (SSE).
#[cfg(target_arch = "x86_64")]
trait Vector: Copy {
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(p: *mut f32, v: Self);
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn sub(a: Self, b: Self) -> Self;
    unsafe fn splat(v: f32) -> Self;
    /// `[l0, r0, l1, r1, ...]` to `p` (twice the lanes).
    unsafe fn store_interleaved(p: *mut f32, l: Self, r: Self);
}

#[cfg(target_arch = "x86_64")]
impl Vector for __m256 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        _mm256_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn store_interleaved(p: *mut f32, l: Self, r: Self) {
        // Per 128-bit half: [l0 r0 l1 r1 | l4 r4 l5 r5] and [l2 r2 l3 r3 | l6 r6 l7 r7].
        let (lo, hi) = (_mm256_unpacklo_ps(l, r), _mm256_unpackhi_ps(l, r));
        _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(lo, hi));
        _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
    }
}

#[cfg(target_arch = "x86_64")]
impl Vector for __m128 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        _mm_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        _mm_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        _mm_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn store_interleaved(p: *mut f32, l: Self, r: Self) {
        _mm_storeu_ps(p, _mm_unpacklo_ps(l, r));
        _mm_storeu_ps(p.add(4), _mm_unpackhi_ps(l, r));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn input_groups(rows: *const f32, half: usize, done: usize, v: *mut f32, stride: usize) {
    // Eight tiles at a time while they fit, then four (no closures here: a closure does not
    // get this function's target features, and its intrinsics would become calls).
    let mut tx = 0;
    while tx + 8 <= done {
        input_group::<__m256>(rows, half, tx, v, stride);
        tx += 8;
    }
    if tx < done {
        input_group::<__m128>(rows, half, tx, v, stride);
    }
}

/// Bᵀ's rows on the columns of each row, then on the rows (as `super::input_tile`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn input_group<V: Vector>(rows: *const f32, half: usize, tx: usize, v: *mut f32, s: usize) {
    let x0 = input_columns::<V>(rows, half, tx);
    let x1 = input_columns::<V>(rows.add(2 * half), half, tx);
    let x2 = input_columns::<V>(rows.add(4 * half), half, tx);
    let x3 = input_columns::<V>(rows.add(6 * half), half, tx);
    for (j, (((a, b), c), d)) in x0.into_iter().zip(x1).zip(x2).zip(x3).enumerate() {
        let out = v.add(tx + j * s);
        V::store(out, V::sub(a, c));
        V::store(out.add(4 * s), V::add(b, c));
        V::store(out.add(8 * s), V::sub(c, b));
        V::store(out.add(12 * s), V::sub(b, d));
    }
}

/// Bᵀ's rows on the four columns of one padded row's tiles.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn input_columns<V: Vector>(row: *const f32, half: usize, tx: usize) -> [V; 4] {
    let (even, odd) = (row.add(tx), row.add(half + tx));
    let r = [
        V::load(even),
        V::load(odd),
        V::load(even.add(1)),
        V::load(odd.add(1)),
    ];
    [
        V::sub(r[0], r[2]),
        V::add(r[1], r[2]),
        V::sub(r[2], r[1]),
        V::sub(r[1], r[3]),
    ]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn output_groups(
    m: *const f32,
    stride: usize,
    bias: f32,
    top: *mut f32,
    bottom: *mut f32,
    done: usize,
) {
    let mut tx = 0;
    while tx + 8 <= done {
        output_group::<__m256>(m, stride, bias, top, bottom, tx);
        tx += 8;
    }
    if tx < done {
        output_group::<__m128>(m, stride, bias, top, bottom, tx);
    }
}

/// Aᵀ's rows on the rows of M, then on the columns, plus the bias (as `super::output_tile`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn output_group<V: Vector>(
    m: *const f32,
    stride: usize,
    bias: f32,
    top: *mut f32,
    bottom: *mut f32,
    tx: usize,
) {
    let m = m.add(tx);
    let mut s = [V::splat(0.0); 4];
    let mut d = [V::splat(0.0); 4];
    for j in 0..4 {
        let [a, b, c, e] = [j, 4 + j, 8 + j, 12 + j].map(|xi| xi * stride);
        s[j] = V::add(
            V::add(V::load(m.add(a)), V::load(m.add(b))),
            V::load(m.add(c)),
        );
        d[j] = V::sub(
            V::sub(V::load(m.add(b)), V::load(m.add(c))),
            V::load(m.add(e)),
        );
    }
    let bias = V::splat(bias);
    output_columns(s, bias, top.add(2 * tx));
    if !bottom.is_null() {
        output_columns(d, bias, bottom.add(2 * tx));
    }
}

/// Aᵀ's rows on the columns of one output row's tiles, plus the bias, interleaved to `out`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn output_columns<V: Vector>(r: [V; 4], bias: V, out: *mut f32) {
    let left = V::add(V::add(V::add(r[0], r[1]), r[2]), bias);
    let right = V::add(V::sub(V::sub(r[1], r[2]), r[3]), bias);
    V::store_interleaved(out, left, right);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gradient_groups(rows: *const f32, half: usize, done: usize, dm: *mut f32, stride: usize) {
    let mut tx = 0;
    while tx + 8 <= done {
        gradient_group::<__m256>(rows, half, tx, dm, stride);
        tx += 8;
    }
    if tx < done {
        gradient_group::<__m128>(rows, half, tx, dm, stride);
    }
}

/// The output gradient's tiles `[[a, b], [c, d]]` through A (as `super::transform_gradient`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn gradient_group<V: Vector>(
    rows: *const f32,
    half: usize,
    tx: usize,
    dm: *mut f32,
    stride: usize,
) {
    let (top, bottom) = (rows.add(tx), rows.add(2 * half + tx));
    let (a, b) = (V::load(top), V::load(top.add(half)));
    let (c, d) = (V::load(bottom), V::load(bottom.add(half)));
    let zero = V::splat(0.0);
    let rows = [
        [a, b],
        [V::add(a, c), V::add(b, d)],
        [V::sub(a, c), V::sub(b, d)],
        [V::sub(zero, c), V::sub(zero, d)],
    ];
    for (i, [p, q]) in rows.into_iter().enumerate() {
        let values = [p, V::add(p, q), V::sub(p, q), V::sub(zero, q)];
        for (j, lanes) in values.into_iter().enumerate() {
            V::store(dm.add((4 * i + j) * stride + tx), lanes);
        }
    }
}
