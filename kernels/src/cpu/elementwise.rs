//! Element-wise maps into fresh buffers, written so that the compiler vectorises them.
//!
//! A rayon `par_iter().map().collect()` pushes one element at a time through its collect
//! consumer (a bounds check per element), which keeps the loop scalar: the supernet's
//! activations and their gradients spent 17% of a sampled NAS-Bench-201 step there. Here
//! each rayon task maps a contiguous chunk with a plain loop, straight into the output's
//! uninitialised memory (no zeroing pass first).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::PARALLEL_MIN;

/// Elements one rayon task maps: large enough that a hand-off is rare, small enough that
/// both cores get work from a 28x28 feature map of a few channels.
const CHUNK: usize = 1 << 14;

/// `f` of every element of `x`.
pub(crate) fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    if x.len() < PARALLEL_MIN {
        return x.iter().map(|&v| f(v)).collect();
    }
    #[allow(unsafe_code)]
    // SAFETY: the closure zips its whole chunk with the input slice of the chunk's length.
    unsafe {
        fill(x.len(), |start, out| {
            let end = start + out.len();
            for (o, &v) in out.iter_mut().zip(&x[start..end]) {
                o.write(f(v));
            }
        })
    }
}

/// `f` of every pair of elements of `a` and `b`, which have the same length.
pub(crate) fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "zip_map of unequal lengths");
    if a.len() < PARALLEL_MIN {
        return a.iter().zip(b).map(|(&u, &v)| f(u, v)).collect();
    }
    #[allow(unsafe_code)]
    // SAFETY: the closure zips its whole chunk with input slices of the chunk's length.
    unsafe {
        fill(a.len(), |start, out| {
            let end = start + out.len();
            for ((o, &u), &v) in out.iter_mut().zip(&a[start..end]).zip(&b[start..end]) {
                o.write(f(u, v));
            }
        })
    }
}

/// A buffer of `len` values, written in parallel by `write(start, chunk)` for the chunks
/// of [`CHUNK`] elements beginning at `start`.
///
/// # Safety
/// `write` must initialise every element of the chunk it is given.
#[allow(unsafe_code)]
unsafe fn fill(len: usize, write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    // SAFETY: passed on to the caller.
    let (out, _) = unsafe { fill_chunks(len, CHUNK, |i, chunk| write(i * CHUNK, chunk)) };
    out
}

/// A buffer of `len` values, written in parallel by `write(i, chunk)` for its chunks of
/// `chunk` elements (the last may be shorter; a single chunk is written on the calling
/// thread), never zeroed first; returns it with what each call returned, in chunk order.
///
/// # Safety
/// `write` must initialise every element of the chunk it is given.
#[allow(unsafe_code)]
pub(crate) unsafe fn fill_chunks<R: Send>(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let results = if len <= chunk {
        // One chunk: on this thread, without waking the pool.
        vec![write(0, spare)]
    } else {
        spare
            .par_chunks_mut(chunk.max(1))
            .enumerate()
            .map(|(i, part)| write(i, part))
            .collect()
    };
    // SAFETY: the chunks partition the first `len` elements of the spare capacity, and
    // the caller's `write` initialised every element of each.
    unsafe {
        out.set_len(len);
    }
    (out, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunked_maps_equal_the_plain_ones_at_every_size() {
        // Below the parallel size, at it, and with a partial last chunk.
        for len in [0, 5, PARALLEL_MIN - 1, PARALLEL_MIN, 3 * CHUNK + 7] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let mapped = map(&a, |v| v * 2.0 + 1.0);
            let expected: Vec<f32> = a.iter().map(|v| v * 2.0 + 1.0).collect();
            assert_eq!(mapped, expected, "map, {len} elements");
            let zipped = zip_map(&a, &b, |u, v| u * v - u);
            let expected: Vec<f32> = a.iter().zip(&b).map(|(u, v)| u * v - u).collect();
            assert_eq!(zipped, expected, "zip_map, {len} elements");
        }
    }
}
