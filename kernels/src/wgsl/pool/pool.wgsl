// Pooling over NCHW planes: average (padding not counted, NAS-Bench-201's
// count_include_pad=False) or max (padding never wins), forward and backward, and global
// average pooling. One invocation per output value (forward) or input value (backward).

struct PoolParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    is_max: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

// The in-image input range [start, end) of output coordinate `o` along an axis of `size`.
fn window(o: u32, size: u32) -> vec2<u32> {
    let start = i32(o * params.stride) - i32(params.padding);
    let end = min(start + i32(params.kernel), i32(size));
    return vec2<u32>(u32(max(start, 0)), u32(max(end, 0)));
}

// The pooled value of output (plane, oy, ox); for max pooling also the flat in-plane index
// of the first maximal input.
fn pool_at(plane: u32, oy: u32, ox: u32) -> vec2<f32> {
    let rows = window(oy, params.h);
    let cols = window(ox, params.w);
    let base = plane * params.h * params.w;
    var acc = 0.0;
    var best = -3.4028235e38;
    var best_at = 0u;
    for (var iy = rows.x; iy < rows.y; iy = iy + 1u) {
        for (var ix = cols.x; ix < cols.y; ix = ix + 1u) {
            let v = x[base + iy * params.w + ix];
            acc = acc + v;
            if (v > best) {
                best = v;
                best_at = iy * params.w + ix;
            }
        }
    }
    if (params.is_max == 1u) {
        return vec2<f32>(best, f32(best_at));
    }
    let count = max((rows.y - rows.x) * (cols.y - cols.x), 1u);
    return vec2<f32>(acc / f32(count), 0.0);
}

@compute @workgroup_size(64, 1, 1)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.n * params.c * params.oh * params.ow) {
        return;
    }
    let ox = index % params.ow;
    let oy = (index / params.ow) % params.oh;
    let plane = index / (params.ow * params.oh);
    out[index] = pool_at(plane, oy, ox).x;
}

// Input (plane, iy, ix) gathers from every output window that holds it.
@compute @workgroup_size(64, 1, 1)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    if (index >= params.n * params.c * params.h * params.w) {
        return;
    }
    let ix = index % params.w;
    let iy = (index / params.w) % params.h;
    let plane = index / (params.w * params.h);
    let here = iy * params.w + ix;
    var acc = 0.0;
    for (var oy = 0u; oy < params.oh; oy = oy + 1u) {
        let rows = window(oy, params.h);
        if (iy < rows.x || iy >= rows.y) {
            continue;
        }
        for (var ox = 0u; ox < params.ow; ox = ox + 1u) {
            let cols = window(ox, params.w);
            if (ix < cols.x || ix >= cols.y) {
                continue;
            }
            let g = dy[(plane * params.oh + oy) * params.ow + ox];
            if (params.is_max == 1u) {
                if (u32(pool_at(plane, oy, ox).y) == here) {
                    acc = acc + g;
                }
            } else {
                acc = acc + g / f32((rows.y - rows.x) * (cols.y - cols.x));
            }
        }
    }
    out[index] = acc;
}

// One invocation per plane: the mean of its h * w values.
@compute @workgroup_size(64, 1, 1)
fn global_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let plane = linear_index(gid, groups);
    if (plane >= params.n * params.c) {
        return;
    }
    let size = params.h * params.w;
    var acc = 0.0;
    for (var i = 0u; i < size; i = i + 1u) {
        acc = acc + x[plane * size + i];
    }
    out[plane] = acc / f32(size);
}

@compute @workgroup_size(64, 1, 1)
fn global_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = linear_index(gid, groups);
    let size = params.h * params.w;
    if (index >= params.n * params.c * size) {
        return;
    }
    out[index] = dy[index / size] / f32(size);
}
