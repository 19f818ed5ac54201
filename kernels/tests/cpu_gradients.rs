//! Every CPU backward against central finite differences, on proptest-generated shapes
//! (odd sizes, stride 2, groups, padding, dilation) with fixed seeds.

use hwnas_kernels::cpu;
use hwnas_kernels::{Activation, Backend, Conv2dSpec, Cpu, Tensor, Tolerance};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn channel_layout_gradients(n in 1usize..3, c1 in 1usize..4, c2 in 1usize..4, h in 1usize..5,
                                w in 1usize..5, seed in 0u64..1000) {
        let a = Tensor::randn(&[n, c1, h, w], 1.0, seed);
        let b = Tensor::randn(&[n, c2, h, w], 1.0, seed + 1);
        let y = cpu::concat_channels(&[&a, &b]).unwrap();
        prop_assert_eq!(y.shape(), &[n, c1 + c2, h, w]);
        // Channel c1 of the result is channel 0 of b.
        prop_assert_eq!(cpu::slice_axis(&y, 1, c1, c2).unwrap(), b.clone());
        let r = Tensor::randn(y.shape(), 1.0, seed + 2);
        let grads = Cpu.concat_channels_backward(&r, &[c1, c2]).unwrap();
        check("concat da", &a, &grads[0], &|a| dot(&cpu::concat_channels(&[a, &b]).unwrap(), &r));
        check("concat db", &b, &grads[1], &|b| dot(&cpu::concat_channels(&[&a, b]).unwrap(), &r));

        for axis in 0..4 {
            let size = a.shape()[axis];
            let (start, len) = (size / 2, size - size / 2);
            let s = cpu::slice_axis(&a, axis, start, len).unwrap();
            let r = Tensor::randn(s.shape(), 1.0, seed + 3);
            let dx = cpu::slice_axis_backward(&r, a.shape(), axis, start).unwrap();
            check("slice", &a, &dx, &|a| dot(&cpu::slice_axis(a, axis, start, len).unwrap(), &r));
        }
    }

    #[test]
    fn broadcast_product_gradients(n in 1usize..3, c in 1usize..4, h in 1usize..4, seed in 0u64..1000) {
        // Squeeze-excite's gate, a per-channel scale and a plain element-wise product.
        let x = Tensor::randn(&[n, c, h, h + 1], 1.0, seed);
        for gate_shape in [vec![n, c, 1, 1], vec![c, 1, 1], vec![n, c, h, h + 1]] {
            let g = Tensor::randn(&gate_shape, 1.0, seed + 1);
            let y = cpu::mul(&x, &g).unwrap();
            prop_assert_eq!(y.shape(), x.shape());
            let r = Tensor::randn(y.shape(), 1.0, seed + 2);
            let (dx, dg) = cpu::mul_backward(&x, &g, &r).unwrap();
            check("mul dx", &x, &dx, &|x| dot(&cpu::mul(x, &g).unwrap(), &r));
            check("mul dgate", &g, &dg, &|g| dot(&cpu::mul(&x, g).unwrap(), &r));
        }
    }
}

#[test]
fn a_broadcast_of_mismatched_shapes_is_refused() {
    let a = Tensor::zeros(&[2, 3, 4, 4]);
    let b = Tensor::zeros(&[2, 2, 1, 1]);
    let message = cpu::mul(&a, &b).unwrap_err().to_string();
    assert!(message.contains("cannot broadcast"), "{message}");
}

#[test]
fn centre_crop_takes_the_middle_and_its_gradient_pads_back() {
    let w = Tensor::randn(&[3, 2, 7, 7], 1.0, 5);
    for size in [5, 3, 1] {
        let crop = cpu::centre_crop(&w, size).unwrap();
        assert_eq!(crop.shape(), &[3, 2, size, size]);
        let off = (7 - size) / 2;
        // The top-left of the crop of kernel (2, 1) is element (off, off) of the 7x7 one.
        assert_eq!(
            crop.data()[(2 * 2 + 1) * size * size],
            w.data()[(2 * 2 + 1) * 49 + off * 7 + off]
        );
        let r = Tensor::randn(crop.shape(), 1.0, 6);
        let dw = cpu::centre_crop_backward(&r, w.shape()).unwrap();
        check("centre crop", &w, &dw, &|w| {
            dot(&cpu::centre_crop(w, size).unwrap(), &r)
        });
    }
    assert!(
        cpu::centre_crop(&w, 4).is_err(),
        "an odd offset has no centre"
    );
}

#[test]
fn softmax_family_gradients() {
    let x = Tensor::randn(&[3, 5], 1.5, 11);
    let r = Tensor::randn(&[3, 5], 1.0, 12);
    let p = cpu::softmax(&x).unwrap();
    check(
        "softmax",
        &x,
        &cpu::softmax_backward(&p, &r).unwrap(),
        &|x| dot(&cpu::softmax(x).unwrap(), &r),
    );
    let l = cpu::log_softmax(&x).unwrap();
    check(
        "log-softmax",
        &x,
        &cpu::log_softmax_backward(&l, &r).unwrap(),
        &|x| dot(&cpu::log_softmax(x).unwrap(), &r),
    );
    // Gumbel-softmax: the softmax of (x + g) / tau, through the backend's softmax.
    let noise = cpu::gumbel_noise(&[3, 5], 13);
    let gumbel = |x: &Tensor| Cpu.softmax(x, Some(&noise), 1.0 / 0.7, false).unwrap();
    let soft = gumbel(&x);
    check(
        "gumbel-softmax",
        &x,
        &Cpu.softmax_backward(&soft, &r, 1.0 / 0.7, false).unwrap(),
        &|x| dot(&gumbel(x), &r),
    );
    // The hard form is one-hot at the relaxed sample's argmax in every row.
    let hard = cpu::one_hot_argmax(&soft).unwrap();
    for (h, s) in hard.data().chunks(5).zip(soft.data().chunks(5)) {
        assert_eq!(h.iter().sum::<f32>(), 1.0);
        let argmax = (0..5).fold(0, |b, i| if s[i] > s[b] { i } else { b });
        assert_eq!(h[argmax], 1.0);
    }
    // The tape's hard and soft Gumbel-softmax are these two from the same relaxed sample.
    let mut tape = hwnas_kernels::Tape::new(&Cpu);
    let logits = tape.leaf(x.clone(), true);
    let relaxed = tape.gumbel_softmax(logits, &noise, 0.7, false).unwrap();
    let one_hot = tape.gumbel_softmax(logits, &noise, 0.7, true).unwrap();
    assert_eq!(tape.value(relaxed), &soft);
    assert_eq!(tape.value(one_hot), &hard);
}

#[test]
fn gumbel_noise_is_seeded_and_has_the_gumbel_mean() {
    let a = cpu::gumbel_noise(&[20_000], 3);
    assert_eq!(a, cpu::gumbel_noise(&[20_000], 3));
    assert_ne!(a, cpu::gumbel_noise(&[20_000], 4));
    // The standard Gumbel's mean is the Euler-Mascheroni constant, 0.5772.
    let mean = a.data().iter().map(|v| f64::from(*v)).sum::<f64>() / 20_000.0;
    assert!((mean - 0.5772).abs() < 0.03, "mean {mean}");
}
