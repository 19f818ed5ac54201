//! Sums and dot products of `f32` slices in a fixed order that vectorises: sixteen
//! independent partial sums over the slice, added pairwise at the end. A plain
//! `iter().sum()` adds one value at a time (its order is the definition), so it runs at
//! one add per floating-point latency; these run at the vector units' width, and give the
//! same bits on every run and machine.

/// Partial sums kept side by side.
const LANES: usize = 16;

fn combine(mut lanes: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// `sum(f(a[i], b[i]))` over two slices of one length (the shorter one bounds it).
fn fold2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            lanes[i] += f(x[i], y[i]);
        }
    }
    for (i, (x, y)) in ar.iter().zip(br).enumerate() {
        lanes[i] += f(*x, *y);
    }
    combine(lanes)
}

/// `sum(x)`.
pub fn sum(x: &[f32]) -> f32 {
    fold2(x, x, |v, _| v)
}

/// `sum((x - mean)^2)`.
pub fn squared_deviations(x: &[f32], mean: f32) -> f32 {
    fold2(x, x, |v, _| (v - mean) * (v - mean))
}

/// `sum(a * b)`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    fold2(a, b, |x, y| x * y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_f64_sums_on_every_remainder() {
        for n in [0, 1, 7, 15, 16, 17, 33, 1000] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
            let want_sum: f64 = a.iter().map(|v| f64::from(*v)).sum();
            let want_dot: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let mean = (want_sum / n.max(1) as f64) as f32;
            let want_sq: f64 = a
                .iter()
                .map(|v| (f64::from(*v) - f64::from(mean)).powi(2))
                .sum();
            assert!((f64::from(sum(&a)) - want_sum).abs() < 1e-3, "sum {n}");
            assert!((f64::from(dot(&a, &b)) - want_dot).abs() < 1e-3, "dot {n}");
            assert!(
                (f64::from(squared_deviations(&a, mean)) - want_sq).abs() < 1e-2,
                "sq {n}"
            );
        }
    }
}
