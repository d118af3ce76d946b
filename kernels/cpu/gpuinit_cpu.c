/* Host fills built on kernels/cuda/gpuinit_stream.cuh: the same functions the CUDA kernels call.
 * Compiled with the wheel (setup.py: one library per x86-64 level), else at run time
 * (gpuinit/backends/cpu_kernel.py: -march=native), always -O3 -ffp-contract=off;
 * the NumPy backend calls it through ctypes, one chunk per thread. The loops below are written
 * so that the compiler vectorizes them: words for a batch of blocks, then one conversion loop. */
#include "../cuda/gpuinit_stream.cuh"

#define GI_BATCH 256 /* blocks per batch: 4 KiB of words and 4 KiB of values stay in L1 */

static void batch_words(uint64_t b0, int nb, uint64_t seed, uint64_t stream, uint32_t* restrict w) {
  for (int i = nb; i < GI_BATCH; ++i) /* a last, short batch: the lanes past it convert a set word, never read */
    w[i] = w[GI_BATCH + i] = w[2 * GI_BATCH + i] = w[3 * GI_BATCH + i] = 0x80000000u;
  for (int i = 0; i < nb; ++i) {
    uint32_t t[4];
    gi_philox(b0 + (uint64_t)i, stream, seed, t);
    w[i] = t[0];
    w[GI_BATCH + i] = t[1];
    w[2 * GI_BATCH + i] = t[2];
    w[3 * GI_BATCH + i] = t[3];
  }
}

/* Values of blocks b0 .. b0 + nb - 1, interleaved by lane, into v[4 * nb]. */
static void batch_values(const gi_params* p, uint64_t b0, int nb, uint64_t seed, uint64_t stream,
                         float* restrict v) {
  uint32_t w[4 * GI_BATCH];
  float x[4 * GI_BATCH];
  batch_words(b0, nb, seed, stream, w);
  const float scale = p->scale, shift = p->shift, lo = p->lo, hi = p->hi;
  if (p->kind == GI_NORMAL) {
    for (int h = 0; h < 2; ++h) /* lane pairs (0, 1) and (2, 3) */
      for (int i = 0; i < nb; ++i) {
        float z0, z1;
        gi_normal_pair(w[2 * h * GI_BATCH + i], w[(2 * h + 1) * GI_BATCH + i], &z0, &z1);
        x[2 * h * GI_BATCH + i] = GI_ADD(GI_MUL(z0, scale), shift);
        x[(2 * h + 1) * GI_BATCH + i] = GI_ADD(GI_MUL(z1, scale), shift);
      }
  } else if (p->kind == GI_UNIFORM) {
    for (int j = 0; j < 4 * GI_BATCH; ++j) {
      float y = GI_ADD(GI_MUL(gi_signed_uniform(w[j]), scale), shift);
      x[j] = GI_CLAMP(y, lo, hi);
    }
  } else { /* u and w first: the batch's largest w picks the erfinv branches evaluated (the same bits) */
    const float p_lo = p->p_lo, p_span = p->p_span, z_lo = p->z_lo, z_hi = p->z_hi;
    const int flip = p->flip;
    float u[4 * GI_BATCH];
    int past5 = 0, past16 = 0; /* counts, not a float max: the loop vectorizes */
    for (int j = 0; j < 4 * GI_BATCH; ++j) {
      u[j] = gi_trunc_u(w[j], p_lo, p_span);
      x[j] = gi_quantile_w(u[j]);
      past5 += x[j] >= 5.0f;
      past16 += x[j] >= 16.0f;
    }
#define GI_TRUNC_LOOP(branches)                                                                      \
    for (int j = 0; j < 4 * GI_BATCH; ++j) {                                                          \
      float z = gi_trunc_z(gi_quantile_at(u[j], x[j], branches), z_lo, z_hi, flip);                  \
      x[j] = GI_CLAMP(GI_ADD(GI_MUL(z, scale), shift), lo, hi);                                      \
    }
    if (!past5) {
      GI_TRUNC_LOOP(1)
    } else if (!past16) {
      GI_TRUNC_LOOP(2)
    } else {
      GI_TRUNC_LOOP(3)
    }
#undef GI_TRUNC_LOOP
  }
  for (int i = 0; i < nb; ++i)
    for (int l = 0; l < 4; ++l) v[4 * i + l] = x[l * GI_BATCH + i];
}

/* Elements [start, start + n) of a draw into out[0 .. n). */
void gi_cpu_fill(const gi_params* p, uint64_t start, uint64_t n, uint64_t seed, uint64_t stream, float* out) {
  if (n == 0) return;
  uint64_t first = start >> 2, last = (start + n - 1) >> 2;
  float v[4 * GI_BATCH];
  for (uint64_t b0 = first; b0 <= last; b0 += GI_BATCH) {
    int nb = last - b0 + 1 < GI_BATCH ? (int)(last - b0 + 1) : GI_BATCH;
    batch_values(p, b0, nb, seed, stream, v);
    uint64_t e0 = 4 * b0, lo = e0 > start ? e0 : start;
    uint64_t e1 = 4 * (b0 + nb), hi = e1 < start + n ? e1 : start + n;
    memcpy(out + (lo - start), v + (lo - e0), (hi - lo) * sizeof(float));
  }
}

/* R runs of L elements starting at starts[r] into out[r * L .. (r + 1) * L). */
void gi_cpu_fill_runs(const gi_params* p, const uint64_t* starts, uint64_t R, uint64_t L, uint64_t seed,
                      uint64_t stream, float* out) {
  for (uint64_t r = 0; r < R; ++r) gi_cpu_fill(p, starts[r], L, seed, stream, out + r * L);
}

/* The same, stored as 16-bit floats (round to nearest even) through a float32 buffer of one batch:
 * bfloat16 when `half` is 0, float16 when it is 1. */
void gi_cpu_fill_runs_16(const gi_params* p, const uint64_t* starts, uint64_t R, uint64_t L, uint64_t seed,
                         uint64_t stream, int half, uint16_t* out) {
  float buf[4 * GI_BATCH];
  for (uint64_t r = 0; r < R; ++r)
    for (uint64_t t = 0; t < L; t += 4 * GI_BATCH) {
      uint64_t n = L - t < 4 * GI_BATCH ? L - t : 4 * GI_BATCH;
      gi_cpu_fill(p, starts[r] + t, n, seed, stream, buf);
      uint16_t* o = out + r * L + t;
      if (half)
        for (uint64_t i = 0; i < n; ++i) o[i] = gi_half_bits(buf[i]);
      else
        for (uint64_t i = 0; i < n; ++i) o[i] = gi_bfloat16_bits(buf[i]);
    }
}

/* float32 -> float16 bits (the kernels' conversion; tests compare it with NumPy's). */
void gi_cpu_half_bits(const float* in, uint64_t n, uint16_t* out) {
  for (uint64_t i = 0; i < n; ++i) out[i] = gi_half_bits(in[i]);
}

/* Raw words of elements [start, start + n). */
void gi_cpu_words(uint64_t start, uint64_t n, uint64_t seed, uint64_t stream, uint32_t* out) {
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t w[4];
    gi_philox((start + i) >> 2, stream, seed, w);
    out[i] = w[(start + i) & 3];
  }
}

/* Many fills in one call: item i writes elements [start, start + n) of its draw's stream, as `store`
 * (0: float32, 1: bfloat16, 2: float16), to out[0 .. n). Every field is 64 bits, so the caller packs the
 * items as rows of a uint64 array: a model's small tensors cost one call, not one call each. A draw of kind
 * GI_CPU_CONSTANT writes its `shift` (a float32) everywhere, rounded once to the store. */
#define GI_CPU_CONSTANT (-1)
typedef struct {
  uint64_t params; /* const gi_params* */
  uint64_t out;    /* float* or uint16_t* */
  uint64_t start, n, seed, stream, store;
} gi_fill_item;

void gi_cpu_fill_items(const gi_fill_item* items, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i) {
    const gi_fill_item* it = items + i;
    const gi_params* p = (const gi_params*)(uintptr_t)it->params;
    if (p->kind == GI_CPU_CONSTANT) {
      const float v = p->shift;
      if (it->store == 0) {
        float* o = (float*)(uintptr_t)it->out;
        for (uint64_t j = 0; j < it->n; ++j) o[j] = v;
      } else {
        const uint16_t b = it->store == 2 ? gi_half_bits(v) : gi_bfloat16_bits(v);
        uint16_t* o = (uint16_t*)(uintptr_t)it->out;
        for (uint64_t j = 0; j < it->n; ++j) o[j] = b;
      }
    } else if (it->store == 0) {
      gi_cpu_fill(p, it->start, it->n, it->seed, it->stream, (float*)(uintptr_t)it->out);
    } else {
      uint64_t start = it->start;
      gi_cpu_fill_runs_16(p, &start, 1, it->n, it->seed, it->stream, it->store == 2,
                          (uint16_t*)(uintptr_t)it->out);
    }
  }
}

#ifndef GI_SOURCE_DIGEST
#define GI_SOURCE_DIGEST ""
#endif
/* The SHA-256 of the sources a wheel's library was built from (setup.py); empty in a build at run time. */
const char gi_cpu_source_digest[] = GI_SOURCE_DIGEST;

/* The widest x86-64 level this CPU and its OS run (1, 2, 3 or 4), 0 on other machines: cpu_kernel.py loads
 * the wheel's library for it. */
int gi_cpu_level(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return 4;
  if (__builtin_cpu_supports("x86-64-v3")) return 3;
  if (__builtin_cpu_supports("x86-64-v2")) return 2;
  return 1;
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd")
      && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2")
      && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return 4;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) return 3;
  return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt") ? 2 : 1;
#else
  return 0;
#endif
}
