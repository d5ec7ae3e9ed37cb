//! Matrix products for the kernels: the `gemm` crate (what burn-flex multiplies with) on
//! slices, single-threaded; the kernels split work between threads themselves, in fixed
//! pieces, so that no sum's order depends on the thread count.

/// A row-major or transposed view of a matrix in a slice.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
    /// Whether every entry lies within `data`.
    pub fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst (row-major [a.rows, b.cols]) = a · b`, or `+= a · b` when `accumulate`.
pub fn matmul(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    product(dst, [b.cols, 1], a, b, accumulate);
}

/// `dst (column-major [a.rows, b.cols]) = a · b`, or `+= a · b` when `accumulate`: the layout
/// gemm's microkernel writes natively, so products with few rows are not transposed inside.
pub fn matmul_col_major(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    product(dst, [1, a.rows], a, b, accumulate);
}

/// `dst = a · b` (or `+=`) with `dst`'s [row, column] strides.
fn product(dst: &mut [f32], [row_stride, col_stride]: [usize; 2], a: Mat, b: Mat, acc: bool) {
    let out = Mat {
        data: dst,
        rows: a.rows,
        cols: b.cols,
        row_stride,
        col_stride,
    };
    assert!(a.cols == b.rows && a.fits() && b.fits() && out.fits());
    // SAFETY: the asserts above keep every index gemm reads or writes inside the slices.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            col_stride as isize,
            row_stride as isize,
            acc,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
