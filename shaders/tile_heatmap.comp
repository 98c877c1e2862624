#version 450
// Reduces a row-major f32 matrix [rows, cols] to a grid [gh, gw] of tiles: one workgroup
// per tile, its threads striding over the tile's elements, then a shared-memory tree.
// Tile (i, j) covers rows [i*rows/gh, (i+1)*rows/gh) and columns [j*cols/gw, ...);
// the host keeps gh <= rows and gw <= cols, so no tile is empty. Non-finite values are
// left out of min, max and mean |w| (the CPU reference in tile_heatmap.cpp does the same).
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Matrix { float w[]; };
struct Tile {
  float min_v;
  float max_v;
  float mean_abs;
  uint zeros;
  uint finite;
};
layout(std430, binding = 1) writeonly buffer Tiles { Tile tiles[]; };
layout(push_constant) uniform Params { uint rows; uint cols; uint gh; uint gw; } p;

shared float s_min[64];
shared float s_max[64];
shared float s_sum[64];
shared uint s_zeros[64];
shared uint s_finite[64];

void main() {
  const uint ti = gl_WorkGroupID.y, tj = gl_WorkGroupID.x, lane = gl_LocalInvocationID.x;
  // The host checks that rows * gh, cols * gw and rows * cols fit in 32 bits.
  const uint r0 = ti * p.rows / p.gh, r1 = (ti + 1) * p.rows / p.gh;
  const uint c0 = tj * p.cols / p.gw, c1 = (tj + 1) * p.cols / p.gw;
  const uint tw = c1 - c0, n = (r1 - r0) * tw;

  float vmin = 1.0 / 0.0, vmax = -1.0 / 0.0, sum = 0.0;
  uint zeros = 0, finite = 0;
  for (uint k = lane; k < n; k += 64) {
    const uint r = r0 + k / tw, c = c0 + k % tw;
    const float v = w[r * p.cols + c];
    if (isnan(v) || isinf(v)) continue;
    vmin = min(vmin, v);
    vmax = max(vmax, v);
    sum += abs(v);
    zeros += v == 0.0 ? 1 : 0;
    finite += 1;
  }
  s_min[lane] = vmin;
  s_max[lane] = vmax;
  s_sum[lane] = sum;
  s_zeros[lane] = zeros;
  s_finite[lane] = finite;
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (lane < stride) {
      s_min[lane] = min(s_min[lane], s_min[lane + stride]);
      s_max[lane] = max(s_max[lane], s_max[lane + stride]);
      s_sum[lane] += s_sum[lane + stride];
      s_zeros[lane] += s_zeros[lane + stride];
      s_finite[lane] += s_finite[lane + stride];
    }
    barrier();
  }
  if (lane == 0) {
    const uint f = s_finite[0];
    Tile t;
    t.min_v = f > 0 ? s_min[0] : 0.0;
    t.max_v = f > 0 ? s_max[0] : 0.0;
    t.mean_abs = f > 0 ? s_sum[0] / float(f) : 0.0;
    t.zeros = s_zeros[0];
    t.finite = f;
    tiles[ti * p.gw + tj] = t;
  }
}
