/* CUDA fill kernels for the CuPy backend, compiled at run time by NVRTC (cupy.RawModule) with
 * --fmad=false; the values come from gpuinit_stream.cuh, so they equal every other backend's.
 *
 * One thread draws one Philox block (four values) and stores those of its run: the array is walked as
 * runs of consecutive logical indices (gpuinit/launch_layout.py launch_geometry). The launcher
 * (gpuinit/backends/cupy_backend.py plan) picks one instantiation of
 *
 *   gi_fill<T, KIND, BRANCHES, PATH, DIMS, WIDE>
 *
 * T: the storage type; KIND: GI_UNIFORM ..., BRANCHES: the erfinv branches a trunc_normal draw reaches (0
 * otherwise); PATH: one of GI_PATH_* below; DIMS: the dims the index walk divides through (0 where none);
 * WIDE: 64-bit local indices (1) or 32-bit ones with magic-number division (0: fewer than 2**31 elements and
 * threads, memory offsets below 2**31). `meta` (int64) holds the geometry.
 *
 * The offsets of `meta` (GI_META_*) and of gi_fill_group's rows (GI_ROW_*, GI_PRM_*) are those of
 * gpuinit/launch_layout.py, defined in front of this file by the launcher (cupy_backend.source). */
#if !defined(GI_META_LEN) || !defined(GI_ROW_LEN) || !defined(GI_PRM_LEN)
#error "the launch layout's offsets are missing: compile gpuinit.backends.cupy_backend.source()"
#endif
#include "gpuinit_stream.cuh"

struct gi_f16 { uint16_t bits; };  /* float16 storage */
struct gi_bf16 { uint16_t bits; }; /* bfloat16 storage (e.g. a uint16 view) */

enum {
  GI_PATH_ALIGNED = 0,      /* one contiguous run from a Philox block, 16-byte aligned: vector stores */
  GI_PATH_RUN = 1,          /* one contiguous run */
  GI_PATH_RUNS_ALIGNED = 2, /* contiguous runs of whole Philox blocks, 16-byte aligned: vector stores */
  GI_PATH_RUNS = 3,         /* contiguous runs */
  GI_PATH_STRIDED = 4,      /* one run, DIMS dims in memory */
  GI_PATH_STRIDED_RUNS = 5  /* runs, DIMS dims in memory and in the logical tensor */
};
/* Contiguous runs are the last dim of the geometry; DIMS: the dims outside them. */
enum { GI_THREADS = 256 }; /* threads per grid block (cupy_backend.THREADS) */
/* meta (launch_layout.GI_FILL_META): base (the logical index of the local origin), run length, threads per run,
 * threads (Philox blocks; GI_PATH_ALIGNED: the whole ones), then per dim d = 0..5 (padded in front): size, magic
 * and shift (floor(j / size) by multiply-high; for d = 0: those of the threads per run), memory stride, logical
 * stride. */

template <int WIDE> struct gi_index { typedef uint32_t type; typedef int32_t offset; };
template <> struct gi_index<1> { typedef uint64_t type; typedef long long offset; };

/* floor(j / n): multiply-high and shift for 32-bit j < 2**31 (regions.divider), a division for 64-bit j. */
GI_HD uint32_t gi_quot(uint32_t j, uint32_t n, uint32_t magic, uint32_t shift) {
#ifdef __CUDA_ARCH__
  uint32_t hi = __umulhi(j, magic);
#else
  uint32_t hi = (uint32_t)(((uint64_t)j * magic) >> 32);
#endif
  return (hi + j) >> shift;
}
GI_HD uint64_t gi_quot(uint64_t j, uint64_t n, uint32_t magic, uint32_t shift) { return j / n; }

template <int WIDE> struct gi_geo {
  typedef typename gi_index<WIDE>::type I;
  typedef typename gi_index<WIDE>::offset O;
  long long base;
  I run_len, per_run, threads;
  I n[6];
  uint32_t magic[6], shift[6];
  O s[6];
  long long g[6];
  GI_HD explicit gi_geo(const long long* __restrict__ m) {
    base = m[GI_META_BASE];
    run_len = (I)m[GI_META_RUN_LEN];
    per_run = (I)m[GI_META_PER_RUN];
    threads = (I)m[GI_META_THREADS];
    for (int d = 0; d < 6; ++d) {
      n[d] = (I)m[GI_META_N + d];
      magic[d] = (uint32_t)m[GI_META_MAGIC + d];
      shift[d] = (uint32_t)m[GI_META_SHIFT + d];
      s[d] = (O)m[GI_META_S + d];
      g[d] = m[GI_META_G + d];
    }
  }
  /* sum(i_d * stride[d]) over the row-major multi-index i of j in dims LAST - D + 1 .. LAST (the first of them
   * unbounded): memory offsets (LOGICAL 0) or logical ones (LOGICAL 1). */
  template <int D, int LAST, int LOGICAL, typename A>
  GI_HD A walk(I j) const {
    A acc = 0;
#pragma unroll
    for (int d = LAST; d > LAST - D + 1; --d) {
      I q = gi_quot(j, n[d], magic[d], shift[d]);
      acc += (A)(j - q * n[d]) * (LOGICAL ? (A)g[d] : (A)s[d]);
      j = q;
    }
    return acc + (A)j * (LOGICAL ? (A)g[LAST - D + 1] : (A)s[LAST - D + 1]);
  }
};

/* Stores, rounded to nearest even for 16-bit types (the hardware conversion on sm_80 and later: the same bits
 * as gi_half_bits and gi_bfloat16_bits for finite values). */
GI_HD uint32_t gi_pack_f16(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
  return r;
#else
  return (uint32_t)gi_half_bits(a) | ((uint32_t)gi_half_bits(b) << 16);
#endif
}
GI_HD uint32_t gi_pack_bf16(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
  return r;
#else
  return (uint32_t)gi_bfloat16_bits(a) | ((uint32_t)gi_bfloat16_bits(b) << 16);
#endif
}
GI_HD void gi_put(float* p, float v) { *p = v; }
GI_HD void gi_put(double* p, float v) { *p = (double)v; }
GI_HD void gi_put(gi_f16* p, float v) { p->bits = (uint16_t)gi_pack_f16(v, 0.0f); }
GI_HD void gi_put(gi_bf16* p, float v) { p->bits = (uint16_t)gi_pack_bf16(v, 0.0f); }
/* The four values at p, aligned to 16 bytes (8 for 16-bit types). */
GI_HD void gi_put4(float* p, const float v[4]) { *(float4*)p = make_float4(v[0], v[1], v[2], v[3]); }
GI_HD void gi_put4(double* p, const float v[4]) {
  ((double2*)p)[0] = make_double2((double)v[0], (double)v[1]);
  ((double2*)p)[1] = make_double2((double)v[2], (double)v[3]);
}
GI_HD void gi_put4(gi_f16* p, const float v[4]) {
  *(uint2*)p = make_uint2(gi_pack_f16(v[0], v[1]), gi_pack_f16(v[2], v[3]));
}
GI_HD void gi_put4(gi_bf16* p, const float v[4]) {
  *(uint2*)p = make_uint2(gi_pack_bf16(v[0], v[1]), gi_pack_bf16(v[2], v[3]));
}

template <int KIND, int BRANCHES>
GI_HD void gi_values(uint64_t block, const gi_params& p, uint64_t seed, uint64_t stream, float v[4]) {
  gi_params q = p;
  q.kind = KIND;
  gi_block_values_n(block, stream, seed, &q, BRANCHES ? BRANCHES : 3, v);
}

/* Threads first, first + step, ... of a launch (a grid-stride loop; the host emulates a grid with it). */
template <typename T, int KIND, int BRANCHES, int PATH, int DIMS, int WIDE>
GI_HD void gi_fill_threads(T* __restrict__ out, const long long* __restrict__ meta, const gi_params& p, uint64_t seed,
                           uint64_t stream, typename gi_index<WIDE>::type first, typename gi_index<WIDE>::type step) {
  typedef typename gi_index<WIDE>::type I;
  typedef typename gi_index<WIDE>::offset O;
  const gi_geo<WIDE> g(meta);
  const long long block0 = g.base >> 2;
  const I lead = (I)(g.base & 3);
  float v[4];
  if constexpr (PATH == GI_PATH_ALIGNED) {
    if (first == 0 && (g.run_len & 3)) { /* the partial last block (threads: the whole ones), by thread 0 */
      gi_values<KIND, BRANCHES>(block0 + g.threads, p, seed, stream, v);
      for (int l = 0; l < (int)(g.run_len & 3); ++l) gi_put(out + ((uint64_t)g.threads << 2) + l, v[l]);
    }
  }
  for (I tid = first; tid < g.threads; tid += step) {
    if constexpr (PATH == GI_PATH_ALIGNED) {
      gi_values<KIND, BRANCHES>(block0 + tid, p, seed, stream, v);
      gi_put4(out + ((uint64_t)tid << 2), v);
    } else if constexpr (PATH == GI_PATH_RUN || PATH == GI_PATH_STRIDED) {
      gi_values<KIND, BRANCHES>(block0 + tid, p, seed, stream, v);
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        I j = tid * 4 + l - lead; /* wraps past run_len for the lanes before the run */
        if (j < g.run_len) {
          if constexpr (PATH == GI_PATH_RUN) gi_put(out + j, v[l]);
          else gi_put(out + g.template walk<DIMS, 5, 0, O>(j), v[l]);
        }
      }
    } else {
      I r = gi_quot(tid, g.per_run, g.magic[0], g.shift[0]), k = tid - r * g.per_run, j0 = r * g.run_len;
      long long start = g.base;
      if constexpr (PATH == GI_PATH_STRIDED_RUNS) start += g.template walk<DIMS, 5, 1, long long>(j0);
      else start += g.template walk<DIMS, 4, 1, long long>(r); /* the run is dim 5 */
      gi_values<KIND, BRANCHES>((start >> 2) + k, p, seed, stream, v);
      if constexpr (PATH == GI_PATH_RUNS_ALIGNED) {
        gi_put4(out + ((uint64_t)tid << 2), v); /* j0 + 4 k == 4 tid */
      } else {
#pragma unroll
        for (int l = 0; l < 4; ++l) {
          I t = k * 4 + l - (I)(start & 3);
          if (t < g.run_len) {
            if constexpr (PATH == GI_PATH_RUNS) gi_put(out + (j0 + t), v[l]);
            else gi_put(out + g.template walk<DIMS, 5, 0, O>(j0 + t), v[l]);
          }
        }
      }
    }
  }
}

template <typename T, int KIND, int BRANCHES, int PATH, int DIMS, int WIDE>
__global__ void __launch_bounds__(GI_THREADS)
    gi_fill(T* __restrict__ out, const long long* __restrict__ meta, float scale, float shift, float lo, float hi,
            float p_lo, float p_span, float z_lo, float z_hi, int flip, unsigned long long seed,
            unsigned long long stream) {
  typedef typename gi_index<WIDE>::type I;
  gi_params p;
  p.kind = KIND; p.flip = flip; p.scale = scale; p.shift = shift; p.lo = lo; p.hi = hi;
  p.p_lo = p_lo; p.p_span = p_span; p.z_lo = z_lo; p.z_hi = z_hi;
  gi_fill_threads<T, KIND, BRANCHES, PATH, DIMS, WIDE>(out, meta, p, seed, stream,
                                                       (I)blockIdx.x * blockDim.x + threadIdx.x,
                                                       (I)gridDim.x * blockDim.x);
}

/* Thread `thread` of grid block `cta` of a grouped launch, for the tensor of table row `t` and params `prm`:
 * contiguous tensors that hold one run of logical indices (whole tensors, row shards). A row (int64,
 * launch_layout.GI_GROUP_ROW): address, numel, its first grid block, seed, stream, flip, start (the logical index
 * of its first element); params (float32, GI_PRM_LEN): scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi. */
template <typename T, int KIND, int BRANCHES>
GI_HD void gi_fill_member(const long long* __restrict__ t, const float* __restrict__ prm, uint32_t cta,
                          uint32_t thread) {
  T* out = (T*)(unsigned long long)t[GI_ROW_ADDRESS];
  const uint64_t numel = (uint64_t)t[GI_ROW_NUMEL], start = (uint64_t)t[GI_ROW_START], lead = start & 3;
  /* lane 0's index + lead */
  const uint64_t e = ((uint64_t)(cta - (uint32_t)t[GI_ROW_FIRST_BLOCK]) * GI_THREADS + thread) * 4;
  if (e >= lead + numel) return;
  gi_params p;
  p.kind = KIND; p.flip = (int)t[GI_ROW_FLIP]; p.scale = prm[0]; p.shift = prm[1]; p.lo = prm[2]; p.hi = prm[3];
  p.p_lo = prm[4]; p.p_span = prm[5]; p.z_lo = prm[6]; p.z_hi = prm[7];
  float v[4];
  gi_values<KIND, BRANCHES>((start >> 2) + (e >> 2), p, (uint64_t)t[GI_ROW_SEED], (uint64_t)t[GI_ROW_STREAM], v);
  if (lead == 0 && (t[GI_ROW_ADDRESS] & (sizeof(T) == 2 ? 7 : 15)) == 0 && e + 4 <= numel) {
    gi_put4(out + e, v);
  } else {
    for (int l = 0; l < 4; ++l) {
      uint64_t j = e + l - lead; /* wraps past numel for the lanes before the tensor */
      if (j < numel) gi_put(out + j, v[l]);
    }
  }
}

/* One launch for many tensors of one storage type and draw kind: grid block b fills GI_THREADS Philox blocks
 * of the tensor in row owner[b] of `table` (gi_fill_member). */
template <typename T, int KIND, int BRANCHES>
__global__ void __launch_bounds__(GI_THREADS)
    gi_fill_group(const long long* __restrict__ table, const float* __restrict__ params,
                  const int* __restrict__ owner) {
  const long long row = owner[blockIdx.x];
  gi_fill_member<T, KIND, BRANCHES>(table + GI_ROW_LEN * row, params + GI_PRM_LEN * row, blockIdx.x, threadIdx.x);
}
