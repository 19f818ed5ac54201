// Copies a window along one axis: for a tensor viewed as [outer, length, inner],
// dst[o, dst_start + j, i] = src[o, src_start + j, i] for j < count. Slicing, its backward
// (into zeros), concatenation (one copy per part) and kernel centre-cropping (one copy per
// spatial axis) are all this copy.

struct WindowParams {
    outer: u32,
    inner: u32,
    src_length: u32,
    dst_length: u32,
    src_start: u32,
    dst_start: u32,
    count: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: WindowParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= params.outer * params.count * params.inner) {
        return;
    }
    let i = index % params.inner;
    let j = (index / params.inner) % params.count;
    let o = index / (params.inner * params.count);
    dst[(o * params.dst_length + params.dst_start + j) * params.inner + i] =
        src[(o * params.src_length + params.src_start + j) * params.inner + i];
}
