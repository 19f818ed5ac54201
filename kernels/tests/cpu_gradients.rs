//! Every CPU backward against central finite differences, on proptest-generated shapes
//! (odd sizes, stride 2, groups, padding, dilation) with fixed seeds.

use hwnas_kernels::cpu;
use hwnas_kernels::{Activation, Conv2dSpec, Tensor, Tolerance};
use proptest::prelude::*;

/// `sum(f(x) * r)` in f64, the scalar whose gradient the backward computes for `dy = r`.
fn dot(a: &Tensor, r: &Tensor) -> f64 {
    a.data()
        .iter()
        .zip(r.data())
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// Checks `analytic` against central differences of `loss` at up to 24 coordinates of `x`.
fn check(name: &str, x: &Tensor, analytic: &Tensor, loss: &dyn Fn(&Tensor) -> f64) {
    let eps = 1e-2f32;
    let step = (x.len() / 24).max(1);
    let mut numeric = Vec::new();
    let mut expected = Vec::new();
    for i in (0..x.len()).step_by(step) {
        let mut plus = x.clone();
        plus.data_mut()[i] += eps;
        let mut minus = x.clone();
        minus.data_mut()[i] -= eps;
        numeric.push(((loss(&plus) - loss(&minus)) / (2.0 * f64::from(eps))) as f32);
        expected.push(analytic.data()[i]);
    }
    if let Some((i, a, b)) = Tolerance::FINITE_DIFFERENCE.first_mismatch(&numeric, &expected) {
        panic!(
            "{name}: coordinate {} numeric {a} vs analytic {b}",
            i * step
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_gradients(n in 1usize..3, groups in 1usize..3, cin_g in 1usize..3, cout_g in 1usize..3,
                        size in 4usize..9, k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..3,
                        dilation in 1usize..3, seed in 0u64..1000) {
        let padding = dilation * (k - 1) / 2;
        let spec = Conv2dSpec { stride, padding, dilation, groups };
        let (cin, cout) = (cin_g * groups, cout_g * groups);
        prop_assume!(spec.output_size(size, k).is_some());
        let x = Tensor::randn(&[n, cin, size, size + 1], 1.0, seed);
        let w = Tensor::randn(&[cout, cin_g, k, k], 0.5, seed + 1);
        let b = Tensor::randn(&[cout], 0.5, seed + 2);
        let y = cpu::conv2d(&x, &w, Some(&b), &spec).unwrap();
        let r = Tensor::randn(y.shape(), 1.0, seed + 3);
        let (dx, dw, db) = cpu::conv2d_backward(&x, &w, &r, &spec).unwrap();
        check("conv dx", &x, &dx, &|x| dot(&cpu::conv2d(x, &w, Some(&b), &spec).unwrap(), &r));
        check("conv dw", &w, &dw, &|w| dot(&cpu::conv2d(&x, w, Some(&b), &spec).unwrap(), &r));
        check("conv db", &b, &db, &|b| dot(&cpu::conv2d(&x, &w, Some(b), &spec).unwrap(), &r));
    }

    #[test]
    fn matmul_gradients(m in 1usize..7, k in 1usize..7, n in 1usize..7, seed in 0u64..1000) {
        let a = Tensor::randn(&[m, k], 1.0, seed);
        let b = Tensor::randn(&[k, n], 1.0, seed + 1);
        let r = Tensor::randn(&[m, n], 1.0, seed + 2);
        let (da, db) = cpu::matmul_backward(&a, &b, &r).unwrap();
        check("matmul da", &a, &da, &|a| dot(&cpu::matmul(a, &b).unwrap(), &r));
        check("matmul db", &b, &db, &|b| dot(&cpu::matmul(&a, b).unwrap(), &r));
    }

    #[test]
    fn pooling_gradients(size in 3usize..9, stride in 1usize..3, seed in 0u64..1000) {
        let x = Tensor::randn(&[2, 2, size, size], 1.0, seed);
        let y = cpu::avg_pool(&x, 3, stride, 1).unwrap();
        let r = Tensor::randn(y.shape(), 1.0, seed + 1);
        let dx = cpu::avg_pool_backward(&x, &r, 3, stride, 1).unwrap();
        check("avg pool", &x, &dx, &|x| dot(&cpu::avg_pool(x, 3, stride, 1).unwrap(), &r));
        // Max pooling: distinct values 0.1 apart, so a 0.01 step never changes a window's maximum.
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&i, &j| x.data()[i].total_cmp(&x.data()[j]));
        let mut spaced = vec![0.0f32; x.len()];
        for (rank, &i) in order.iter().enumerate() {
            spaced[i] = rank as f32 * 0.1;
        }
        let xs = Tensor::new(x.shape(), spaced).unwrap();
        let y = cpu::max_pool(&xs, 3, stride, 1).unwrap();
        let r = Tensor::randn(y.shape(), 1.0, seed + 2);
        let dx = cpu::max_pool_backward(&xs, &r, 3, stride, 1).unwrap();
        check("max pool", &xs, &dx, &|x| dot(&cpu::max_pool(x, 3, stride, 1).unwrap(), &r));
        let r = Tensor::randn(&[2, 2, 1, 1], 1.0, seed + 3);
        let dx = cpu::global_avg_pool_backward(&x, &r).unwrap();
        check("global avg pool", &x, &dx, &|x| dot(&cpu::global_avg_pool(x).unwrap(), &r));
    }
}

#[test]
fn activation_gradients_away_from_kinks() {
    // Values at least 0.05 from every kink (0, 6, -3, 3), where finite differences are exact.
    let values: Vec<f32> = (-80..80).map(|i| i as f32 * 0.1 + 0.05).collect();
    let x = Tensor::new(&[values.len()], values).unwrap();
    let r = Tensor::randn(x.shape(), 1.0, 4);
    for f in Activation::ALL {
        let dx = cpu::activation_backward(&x, &r, f).unwrap();
        check(&format!("{f:?}"), &x, &dx, &|x| {
            dot(&cpu::activation(x, f), &r)
        });
    }
}

#[test]
fn cross_entropy_and_mixed_op_gradients() {
    let logits = Tensor::randn(&[4, 5], 2.0, 9);
    let labels = [0, 3, 4, 1];
    let grad = cpu::cross_entropy_backward(&logits, &labels).unwrap();
    check("cross entropy", &logits, &grad, &|l| {
        f64::from(cpu::cross_entropy(l, &labels).unwrap())
    });

    let a = Tensor::randn(&[2, 3, 4, 4], 1.0, 1);
    let b = Tensor::randn(&[2, 3, 4, 4], 1.0, 2);
    let weights = [0.2f32, 0.0, 0.8];
    let r = Tensor::randn(a.shape(), 1.0, 3);
    let candidates = [Some(&a), None, Some(&b)];
    let (dweights, dcandidates) = cpu::mixed_op_backward(&candidates, &weights, &r).unwrap();
    let w = Tensor::new(&[3], weights.to_vec()).unwrap();
    let dw = Tensor::new(&[3], dweights).unwrap();
    // The skipped candidate's weight gradient is 0 by definition of the sparse form.
    assert_eq!(dw.data()[1], 0.0);
    let loss = |w: &Tensor| {
        let mut ws = w.data().to_vec();
        ws[1] = 0.0;
        dot(&cpu::mixed_op(&candidates, &ws).unwrap(), &r)
    };
    check("mixed op weights", &w, &dw, &loss);
    let da = dcandidates[0].as_ref().unwrap();
    check("mixed op candidate", &a, da, &|a| {
        dot(
            &cpu::mixed_op(&[Some(a), None, Some(&b)], &weights).unwrap(),
            &r,
        )
    });
}

#[test]
fn batch_norm_gradients() {
    let x = Tensor::randn(&[3, 2, 3, 4], 1.5, 21);
    let gamma = Tensor::new(&[2], vec![1.3, 0.7]).unwrap();
    let beta = Tensor::new(&[2], vec![0.1, -0.2]).unwrap();
    let (y, cache) = cpu::batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
    let r = Tensor::randn(y.shape(), 1.0, 22);
    let (dx, dgamma, dbeta) = cpu::batch_norm_train_backward(&cache, &gamma, &r).unwrap();
    check("bn dx", &x, &dx, &|x| {
        dot(
            &cpu::batch_norm_train(x, &gamma, &beta, 1e-5).unwrap().0,
            &r,
        )
    });
    check("bn dgamma", &gamma, &dgamma, &|g| {
        dot(&cpu::batch_norm_train(&x, g, &beta, 1e-5).unwrap().0, &r)
    });
    check("bn dbeta", &beta, &dbeta, &|b| {
        dot(&cpu::batch_norm_train(&x, &gamma, b, 1e-5).unwrap().0, &r)
    });
}
