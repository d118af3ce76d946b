/* CUDA fill kernels for the CuPy backend, compiled at run time by NVRTC (cupy.RawModule) with
 * --fmad=false; the values come from gpuinit_stream.cuh, so they equal every other backend's.
 *
 * One thread draws one Philox block (four values) and stores those of its run: the array is walked as
 * runs of consecutive logical indices described by the int64 geometry vector `meta`
 * (gpuinit/regions.py launch_geometry: base, run_len, blocks per run, n1..n5, s0..s5, g0..g5). */
#include "gpuinit_stream.cuh"

struct gi_f16 { uint16_t bits; };  /* float16 storage */
struct gi_bf16 { uint16_t bits; }; /* bfloat16 storage (e.g. a uint16 view) */

GI_HD void gi_put(float* p, float v) { *p = v; }
GI_HD void gi_put(double* p, float v) { *p = (double)v; }
GI_HD void gi_put(gi_f16* p, float v) { p->bits = gi_half_bits(v); }
GI_HD void gi_put(gi_bf16* p, float v) { p->bits = gi_bfloat16_bits(v); }

template <typename T>
__global__ void gi_fill(T* out, const long long* meta, int single_run, int contiguous, int kind, int flip,
                        float scale, float shift, float lo, float hi, float p_lo, float p_span, float z_lo,
                        float z_hi, unsigned long long seed, unsigned long long stream, long long threads) {
  const long long base = meta[0], run_len = meta[1], blocks_per_run = meta[2];
  gi_params p;
  p.kind = kind; p.flip = flip; p.scale = scale; p.shift = shift; p.lo = lo; p.hi = hi;
  p.p_lo = p_lo; p.p_span = p_span; p.z_lo = z_lo; p.z_hi = z_hi;
  for (long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x; tid < threads;
       tid += (long long)gridDim.x * blockDim.x) {
    long long run = tid / blocks_per_run, j0 = run * run_len;
    long long start = single_run ? base : base + gi_unravel(j0, meta + 3, meta + 14);
    long long block = (start >> 2) + tid % blocks_per_run;
    float v[4];
    gi_block_values((uint64_t)block, stream, seed, &p, v);
    for (int lane = 0; lane < 4; ++lane) {
      long long t = block * 4 + lane - start;
      if (t < 0 || t >= run_len) continue;
      long long j = j0 + t;
      gi_put(out + (contiguous ? j : gi_unravel(j, meta + 3, meta + 8)), v[lane]);
    }
  }
}

template __global__ void gi_fill<float>(float*, const long long*, int, int, int, int, float, float, float, float,
                                        float, float, float, float, unsigned long long, unsigned long long, long long);
template __global__ void gi_fill<double>(double*, const long long*, int, int, int, int, float, float, float, float,
                                         float, float, float, float, unsigned long long, unsigned long long, long long);
template __global__ void gi_fill<gi_f16>(gi_f16*, const long long*, int, int, int, int, float, float, float, float,
                                         float, float, float, float, unsigned long long, unsigned long long, long long);
template __global__ void gi_fill<gi_bf16>(gi_bf16*, const long long*, int, int, int, int, float, float, float, float,
                                          float, float, float, float, unsigned long long, unsigned long long, long long);
