//! Matrix transposes, 8x8 blocks at a time through AVX2 registers where the CPU has them (a
//! plain loop stores one value at a time, a row apart). Copies only, so the bits never depend
//! on the instruction set.

use super::gemm::Mat;

/// `dst[c · dst_stride + r] = src[r, c]` for every entry of `src` (rows of contiguous values,
/// `src.row_stride` apart); the rest of `dst` is left as it is.
pub fn transpose(src: Mat, dst: &mut [f32], dst_stride: usize) {
    let transposed = Mat {
        data: dst,
        rows: src.cols,
        cols: src.rows,
        row_stride: dst_stride,
        col_stride: 1,
    };
    assert!(
        src.col_stride == 1 && src.fits() && transposed.fits(),
        "transpose: [{}, {}] (rows {} apart) does not fit",
        src.rows,
        src.cols,
        src.row_stride
    );
    let (rows8, cols8) = (src.rows / 8 * 8, src.cols / 8 * 8);
    let mut blocks_done = false;
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: AVX2 is there (checked above); every block lies within the spans checked by
        // the assert.
        unsafe {
            blocks_avx2(
                src.data.as_ptr(),
                src.row_stride,
                rows8,
                cols8,
                dst.as_mut_ptr(),
                dst_stride,
            )
        };
        blocks_done = true;
    }
    for r in 0..src.rows {
        // The 8x8 blocks' part of the row when they were not done above; the tail always.
        let from = if blocks_done && r < rows8 { cols8 } else { 0 };
        for c in from..src.cols {
            dst[c * dst_stride + r] = src.data[r * src.row_stride + c];
        }
    }
}

/// Columns of `src` per piece of [`transpose_split`]: each piece writes its own rows of `dst`.
const PIECE_COLUMNS: usize = 128;

/// Entries below which a transpose stays on one thread.
const MIN_SPLIT: usize = 1 << 16;

/// [`transpose`], in pieces of columns on several threads where the copy is large enough
/// (LeNet-300-100's first-layer weights, 235K entries, every step).
pub fn transpose_split(src: Mat, dst: &mut [f32], dst_stride: usize) {
    let split = super::parallel::worth(src.rows * src.cols, MIN_SPLIT);
    if !split || src.cols <= PIECE_COLUMNS {
        return transpose(src, dst, dst_stride);
    }
    let dst = &mut dst[..src.cols * dst_stride];
    super::parallel::for_chunks(true, dst, PIECE_COLUMNS * dst_stride, |i, rows| {
        let first = i * PIECE_COLUMNS;
        let piece = Mat {
            data: &src.data[first..],
            cols: (src.cols - first).min(PIECE_COLUMNS),
            ..src
        };
        transpose(piece, rows, dst_stride);
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_avx2(
    src: *const f32,
    src_stride: usize,
    rows8: usize,
    cols8: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    use std::arch::x86_64::*;
    for r0 in (0..rows8).step_by(8) {
        for c0 in (0..cols8).step_by(8) {
            // Macros, not closures: these must be compiled with AVX2 like the function.
            macro_rules! load {
                ($k:expr) => {
                    _mm256_loadu_ps(src.add((r0 + $k) * src_stride + c0))
                };
            }
            macro_rules! store {
                ($k:expr, $v:expr) => {
                    _mm256_storeu_ps(dst.add((c0 + $k) * dst_stride + r0), $v)
                };
            }
            let (a0, a1, a2, a3) = (load!(0), load!(1), load!(2), load!(3));
            let (a4, a5, a6, a7) = (load!(4), load!(5), load!(6), load!(7));
            // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves swapped
            // across: row k of the result holds column k of the block.
            let (b0, b1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
            let (b2, b3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
            let (b4, b5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
            let (b6, b7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
            const LOW: i32 = 0b01_00_01_00;
            const HIGH: i32 = 0b11_10_11_10;
            let (q0, q1) = (
                _mm256_shuffle_ps::<LOW>(b0, b2),
                _mm256_shuffle_ps::<HIGH>(b0, b2),
            );
            let (q2, q3) = (
                _mm256_shuffle_ps::<LOW>(b1, b3),
                _mm256_shuffle_ps::<HIGH>(b1, b3),
            );
            let (q4, q5) = (
                _mm256_shuffle_ps::<LOW>(b4, b6),
                _mm256_shuffle_ps::<HIGH>(b4, b6),
            );
            let (q6, q7) = (
                _mm256_shuffle_ps::<LOW>(b5, b7),
                _mm256_shuffle_ps::<HIGH>(b5, b7),
            );
            store!(0, _mm256_permute2f128_ps::<0x20>(q0, q4));
            store!(1, _mm256_permute2f128_ps::<0x20>(q1, q5));
            store!(2, _mm256_permute2f128_ps::<0x20>(q2, q6));
            store!(3, _mm256_permute2f128_ps::<0x20>(q3, q7));
            store!(4, _mm256_permute2f128_ps::<0x31>(q0, q4));
            store!(5, _mm256_permute2f128_ps::<0x31>(q1, q5));
            store!(6, _mm256_permute2f128_ps::<0x31>(q2, q6));
            store!(7, _mm256_permute2f128_ps::<0x31>(q3, q7));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_transpose_is_the_same_copy() {
        // More columns than a piece, a partial last piece, a padded destination; on a pool of
        // three threads, so the pieces really go to several.
        let (rows, cols, dst_stride) = (37, 2 * PIECE_COLUMNS + 77, 40);
        let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let mut whole = vec![-1.0; cols * dst_stride];
        transpose(Mat::new(&src, rows, cols), &mut whole, dst_stride);
        let mut split = vec![-1.0; cols * dst_stride];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| transpose_split(Mat::new(&src, rows, cols), &mut split, dst_stride));
        assert_eq!(whole, split);
    }

    #[test]
    fn every_entry_lands_in_its_place() {
        // Shapes with and without 8x8 blocks, remainders in both directions, strides wider
        // than the rows.
        for (rows, cols, src_stride, dst_stride) in [
            (16, 24, 24, 16),
            (19, 13, 15, 21),
            (3, 40, 40, 5),
            (8, 8, 8, 8),
            (0, 5, 5, 0),
        ] {
            let src: Vec<f32> = (0..rows * src_stride).map(|v| v as f32).collect();
            let mut dst = vec![-1.0; cols * dst_stride];
            let shape = Mat {
                row_stride: src_stride,
                ..Mat::new(&src, rows, cols)
            };
            transpose(shape, &mut dst, dst_stride);
            for c in 0..cols {
                for r in 0..dst_stride {
                    let want = if r < rows {
                        src[r * src_stride + c]
                    } else {
                        -1.0
                    };
                    assert_eq!(dst[c * dst_stride + r], want, "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }
}
