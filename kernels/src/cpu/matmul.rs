//! Matrix product `[M, K] x [K, N]` and its backward.

use super::gemm::sgemm;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn dims(a: &Tensor, b: &Tensor) -> Result<(usize, usize, usize)> {
    match (a.shape(), b.shape()) {
        (&[m, k], &[k2, n]) if k == k2 => Ok((m, k, n)),
        (sa, sb) => Err(Error::Shape(format!(
            "matmul: {sa:?} x {sb:?} needs [M, K] x [K, N]"
        ))),
    }
}

/// `a x b`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (m, k, n) = dims(a, b)?;
    let mut c = Tensor::zeros(&[m, n]);
    sgemm(m, k, n, a.data(), false, b.data(), false, 0.0, c.data_mut());
    Ok(c)
}

/// `(da, db)` from `dc`: `da = dc x b^T`, `db = a^T x dc`.
pub fn matmul_backward(a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
    let (da, db) = matmul_backward_parts(a, b, dc, true, true)?;
    Ok((da.expect("asked for"), db.expect("asked for")))
}

/// `da` and `db` of `C = A x B`, each only when asked for (the other operand is data: its
/// gradient is a product nobody reads).
pub fn matmul_backward_parts(
    a: &Tensor,
    b: &Tensor,
    dc: &Tensor,
    want_a: bool,
    want_b: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (m, k, n) = dims(a, b)?;
    if dc.shape() != [m, n] {
        return Err(Error::Shape(format!(
            "matmul backward: dc {:?}, expected [{m}, {n}]",
            dc.shape()
        )));
    }
    let da = want_a.then(|| {
        let mut da = Tensor::zeros(&[m, k]);
        sgemm(
            m,
            n,
            k,
            dc.data(),
            false,
            b.data(),
            true,
            0.0,
            da.data_mut(),
        );
        da
    });
    let db = want_b.then(|| {
        let mut db = Tensor::zeros(&[k, n]);
        sgemm(
            k,
            m,
            n,
            a.data(),
            true,
            dc.data(),
            false,
            0.0,
            db.data_mut(),
        );
        db
    });
    Ok((da, db))
}
