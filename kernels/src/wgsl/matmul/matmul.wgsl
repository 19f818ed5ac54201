// C[M, N] = A[M, K] x B[K, N], row-major, tiled through workgroup memory with register
// blocking: a 16 x 16 workgroup computes a 64 x 64 tile of C, each invocation a 4 x 4 block
// of it, stepping through K 16 at a time. The tiles hold vec4s so that one invocation reads
// its four rows of A and four columns of B for a depth step in two loads.

struct MatmulParams {
    m: u32,
    k: u32,
    n: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const BLOCK: u32 = 4u;
const DEPTH: u32 = 16u;
const SIDE: u32 = 64u;

// tile_a[d * 16 + r] = A[r * 4 .. r * 4 + 4, d] and tile_b[d * 16 + q] = B[d, q * 4 .. q * 4 + 4],
// relative to the tile's origin.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

fn a_at(row: u32, depth: u32) -> f32 {
    if (row < params.m && depth < params.k) {
        return a[row * params.k + depth];
    }
    return 0.0;
}

fn b_at(depth: u32, column: u32) -> f32 {
    if (depth < params.k && column < params.n) {
        return b[depth * params.n + column];
    }
    return 0.0;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * SIDE;
    let col0 = wid.x * SIDE;
    let local = lid.y * 16u + lid.x;
    // The slot this invocation fills in each tile.
    let a_depth = local % DEPTH;
    let a_rows = local / DEPTH;
    let b_depth = local / 16u;
    let b_cols = local % 16u;
    var acc: array<vec4<f32>, 4>;
    let steps = (params.k + DEPTH - 1u) / DEPTH;
    for (var t = 0u; t < steps; t = t + 1u) {
        let d = t * DEPTH;
        let r = row0 + a_rows * BLOCK;
        tile_a[a_depth * 16u + a_rows] = vec4<f32>(
            a_at(r, d + a_depth),
            a_at(r + 1u, d + a_depth),
            a_at(r + 2u, d + a_depth),
            a_at(r + 3u, d + a_depth),
        );
        let q = col0 + b_cols * BLOCK;
        tile_b[b_depth * 16u + b_cols] = vec4<f32>(
            b_at(d + b_depth, q),
            b_at(d + b_depth, q + 1u),
            b_at(d + b_depth, q + 2u),
            b_at(d + b_depth, q + 3u),
        );
        workgroupBarrier();
        for (var i = 0u; i < DEPTH; i = i + 1u) {
            let av = tile_a[i * 16u + lid.y];
            let bv = tile_b[i * 16u + lid.x];
            acc[0] = acc[0] + av.x * bv;
            acc[1] = acc[1] + av.y * bv;
            acc[2] = acc[2] + av.z * bv;
            acc[3] = acc[3] + av.w * bv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < BLOCK; i = i + 1u) {
        let row = row0 + lid.y * BLOCK + i;
        if (row >= params.m) {
            break;
        }
        for (var j = 0u; j < BLOCK; j = j + 1u) {
            let column = col0 + lid.x * BLOCK + j;
            if (column < params.n) {
                c[row * params.n + column] = acc[i][j];
            }
        }
    }
}
