//! Stability: L2 distance and angle between two trained networks over the kept weights
//! ([S] section 2); and the error barrier on the line between them ([LMC]).

/// L2 distance and angle (degrees) between `a` and `b` over the coordinates `mask` keeps
/// (all coordinates of a tensor without a mask). Only the listed tensors count.
pub fn distance(a: &[Vec<f32>], b: &[Vec<f32>], masks: &[Option<&Vec<f32>>]) -> (f64, f64) {
    let (mut d2, mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for ((x, y), m) in a.iter().zip(b).zip(masks) {
        for j in 0..x.len() {
            let keep = m.map_or(1.0, |m| f64::from(m[j]));
            let (u, v) = (f64::from(x[j]) * keep, f64::from(y[j]) * keep);
            d2 += (u - v) * (u - v);
            dot += u * v;
            na += u * u;
            nb += v * v;
        }
    }
    let cos = if na == 0.0 || nb == 0.0 {
        1.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0)
    };
    (d2.sqrt(), cos.acos().to_degrees())
}

/// The points α = 0, 1/(n-1), ..., 1 on the line from one network to another.
pub fn alphas(points: u32) -> Vec<f64> {
    (0..points)
        .map(|i| f64::from(i) / f64::from(points - 1))
        .collect()
}

/// (1 - α) a + α b, elementwise.
pub fn lerp(a: &[Vec<f32>], b: &[Vec<f32>], alpha: f64) -> Vec<Vec<f32>> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&u, &v)| ((1.0 - alpha) * f64::from(u) + alpha * f64::from(v)) as f32)
                .collect()
        })
        .collect()
}

/// The error barrier: the largest error on the line minus the mean of the two end errors.
pub fn barrier(errors: &[f64]) -> f64 {
    let (Some(first), Some(last)) = (errors.first(), errors.last()) else {
        return 0.0;
    };
    let max = errors.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max - (first + last) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_and_angle_on_known_vectors() {
        let a = vec![vec![1.0, 0.0, 5.0]];
        let b = vec![vec![0.0, 1.0, -7.0]];
        let keep = vec![1.0, 1.0, 0.0];
        let (d, angle) = distance(&a, &b, &[Some(&keep)]);
        assert!((d - 2f64.sqrt()).abs() < 1e-12);
        assert!((angle - 90.0).abs() < 1e-9);
        let (d, angle) = distance(&a, &a, &[None]);
        assert_eq!((d, angle), (0.0, 0.0));
        let c = vec![vec![-1.0, 0.0, -5.0]];
        assert!((distance(&a, &c, &[None]).1 - 180.0).abs() < 1e-6);
    }

    #[test]
    fn barrier_of_a_constructed_line() {
        assert_eq!(alphas(3), vec![0.0, 0.5, 1.0]);
        assert!((barrier(&[0.10, 0.30, 0.50, 0.20, 0.12]) - (0.50 - 0.11)).abs() < 1e-12);
        assert_eq!(barrier(&[0.1, 0.05, 0.1]), 0.0);
        assert_eq!(
            lerp(&[vec![0.0, 2.0]], &[vec![4.0, 0.0]], 0.25),
            vec![vec![1.0, 1.5]]
        );
    }
}
