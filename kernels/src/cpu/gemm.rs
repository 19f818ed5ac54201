//! A safe front to `matrixmultiply`'s SGEMM: `C = A x B + beta C` on row-major slices,
//! either operand optionally transposed.

/// `c[m x n] = op(a) x op(b) + beta * c`, where `op(a)` is `m x k` and `op(b)` is `k x n`;
/// `a` is stored `m x k` (or `k x m` when `transpose_a`), `b` `k x n` (or `n x k`).
///
/// # Panics
/// When a slice is shorter than its dimensions say.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    transpose_a: bool,
    b: &[f32],
    transpose_b: bool,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm operands too short"
    );
    let (rsa, csa) = if transpose_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb) = if transpose_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| *v *= beta);
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: the assertion above bounds every index the strides reach: a[i*rsa + p*csa]
    // < m*k, b[p*rsb + j*csb] < k*n, c[i*n + j] < m*n.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_agree_with_the_definition() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3 x 2
        let mut c = [0.0; 4];
        sgemm(2, 3, 2, &a, false, &b, false, 0.0, &mut c);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]; // a stored 3 x 2
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]; // b stored 2 x 3
        let mut d = [0.0; 4];
        sgemm(2, 3, 2, &at, true, &bt, true, 0.0, &mut d);
        assert_eq!(c, d);
    }
}
