/* The gpuinit random stream (docs/stream.md) as C functions for CUDA devices and for the host.
 *
 * Philox4x32-10 words and their conversions to float32, one IEEE operation at a time: no fused
 * multiply-add (device code uses the explicitly rounded __f*_rn intrinsics; host code is compiled
 * with -ffp-contract=off), no library transcendentals. Every function here returns the same bits
 * as kernels/numpy_stream.py; tests compile this header for the host and compare.
 */
#ifndef GPUINIT_STREAM_CUH
#define GPUINIT_STREAM_CUH

#ifdef __CUDACC__
#define GI_HD __host__ __device__ __forceinline__
#else
#define GI_HD static inline
#endif

#ifdef __CUDACC_RTC__
typedef unsigned int uint32_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#include <string.h>
#endif

#ifdef __CUDA_ARCH__
#define GI_MUL(a, b) __fmul_rn((a), (b))
#define GI_ADD(a, b) __fadd_rn((a), (b))
#define GI_SUB(a, b) __fsub_rn((a), (b))
#define GI_SQRT(a) __fsqrt_rn(a)
GI_HD int32_t gi_f2i(float x) { return __float_as_int(x); }
GI_HD float gi_i2f(int32_t x) { return __int_as_float(x); }
#else
#include <math.h>
#define GI_MUL(a, b) ((a) * (b))
#define GI_ADD(a, b) ((a) + (b))
#define GI_SUB(a, b) ((a) - (b))
#define GI_SQRT(a) sqrtf(a)
GI_HD int32_t gi_f2i(float x) { int32_t i; memcpy(&i, &x, 4); return i; }
GI_HD float gi_i2f(int32_t i) { float x; memcpy(&x, &i, 4); return x; }
#endif
#define GI_STEP(p, t, c) (p) = GI_ADD(GI_MUL((p), (t)), (c))
/* x < lo ? lo : (x > hi ? hi : x), as two independent selects (no branches on the device). */
#define GI_CLAMP(x, lo, hi) gi_clamp((x), (lo), (hi))

GI_HD float gi_clamp(float x, float lo, float hi) {
  float y = x > hi ? hi : x;
  return x < lo ? lo : y;
}

/* Philox4x32 (Salmon et al., SC'11). */
#define GI_PHILOX_M0 0xD2511F53u
#define GI_PHILOX_M1 0xCD9E8D57u
#define GI_PHILOX_W0 0x9E3779B9u
#define GI_PHILOX_W1 0xBB67AE85u

/* Constants as hex floats, so that no compiler rounds a decimal differently from NumPy. */
#define GI_SQRTHF 0x1.6a09e6p-1f   /* sqrt(1/2) */
#define GI_LOG_Q1 -0x1.bd0106p-13f /* ln 2 = GI_LOG_Q2 - GI_LOG_Q1 */
#define GI_LOG_Q2 0x1.63p-1f
#define GI_PI_2M23 0x1.921fb6p-22f /* float32(pi) * 2**-23 */
#define GI_SQRT2 0x1.6a09e6p+0f
#define GI_U_MIN 0x1p-72f          /* truncated normal: u is kept in [2**-72, 1 - 2**-24] */
#define GI_U_MAX 0x1.fffffep-1f

/* The kinds of elementwise draw and their float32 parameters (gpuinit/draws.py computes them). */
enum { GI_UNIFORM = 0, GI_NORMAL = 1, GI_TRUNC_NORMAL = 2, GI_WORDS = 3 /* raw words, bit-cast */ };
typedef struct {
  int kind;
  int flip;     /* trunc: the interval was mirrored into the lower tail */
  float scale;  /* uniform: half width; normal, trunc: std */
  float shift;  /* uniform: center; normal, trunc: mean */
  float lo, hi; /* final clamp (uniform, trunc) */
  float p_lo, p_span, z_lo, z_hi; /* trunc: Phi(z_lo), Phi(z_hi) - Phi(z_lo), standardised bounds */
} gi_params;

/* a * b, 32 x 32 -> 64 bits: one IMAD.WIDE.U32 on the device (NVVM turns the C product of two widened words
 * into a 64-bit multiply, which costs an extra add of the zero high word). */
GI_HD uint64_t gi_mul_wide(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  uint64_t r;
  asm("mul.wide.u32 %0, %1, %2;" : "=l"(r) : "r"(a), "r"(b));
  return r;
#else
  return (uint64_t)a * b;
#endif
}

GI_HD void gi_philox(uint64_t block, uint64_t stream, uint64_t seed, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = gi_mul_wide(GI_PHILOX_M0, c0), p1 = gi_mul_wide(GI_PHILOX_M1, c2);
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += GI_PHILOX_W0;
    k1 += GI_PHILOX_W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* s = ((w >> 8) | 1) - 2**23: odd integers in [-(2**23 - 1), 2**23 - 1]. */
GI_HD int32_t gi_signed_int(uint32_t w) { return (int32_t)((w >> 8) | 1u) - (1 << 23); }
/* v = s * 2**-23 in (-1, 1), exact. */
GI_HD float gi_signed_uniform(uint32_t w) { return GI_MUL((float)gi_signed_int(w), 0x1p-23f); }
/* u = ((w >> 8) | 1) * 2**-24 in (0, 1), exact. */
GI_HD float gi_open_uniform(uint32_t w) { return GI_MUL((float)((w >> 8) | 1u), 0x1p-24f); }

/* Natural log of a positive normal float (Cephes logf). */
GI_HD float gi_log(float x) {
  int32_t bits = gi_f2i(x);
  int32_t e = (bits >> 23) - 126;
  float m = gi_i2f((bits & 0x007FFFFF) | 0x3F000000); /* x = m 2**e, m in [1/2, 1) */
  int small = m < GI_SQRTHF;
  e -= small;
  float f = GI_SUB(m, 1.0f);
  f = GI_ADD(f, small ? m : 0.0f);
  float z = GI_MUL(f, f);
  float y = 0x1.204376p-4f;
  GI_STEP(y, f, -0x1.d7a37p-4f);
  GI_STEP(y, f, 0x1.de4a34p-4f);
  GI_STEP(y, f, -0x1.fcba9ep-4f);
  GI_STEP(y, f, 0x1.23d37ep-3f);
  GI_STEP(y, f, -0x1.555cap-3f);
  GI_STEP(y, f, 0x1.999d58p-3f);
  GI_STEP(y, f, -0x1.fffff8p-3f);
  GI_STEP(y, f, 0x1.555554p-2f);
  y = GI_MUL(y, f);
  y = GI_MUL(y, z);
  float fe = (float)e;
  y = GI_ADD(y, GI_MUL(fe, GI_LOG_Q1));
  y = GI_SUB(y, GI_MUL(z, 0.5f));
  f = GI_ADD(f, y);
  return GI_ADD(f, GI_MUL(fe, GI_LOG_Q2));
}

/* cos(pi v), sin(pi v) for v = s * 2**-23: quadrant and remainder in integers, then Cephes. */
GI_HD void gi_sincospi(int32_t s, float* c, float* sn) {
  int32_t q = (s + (1 << 21)) >> 22; /* round(s / 2**22); s is odd, so no ties */
  float x = GI_MUL((float)(s - q * (1 << 22)), GI_PI_2M23);
  float z = GI_MUL(x, x);
  float sx = GI_MUL(-0x1.9943f2p-13f, z);
  sx = GI_ADD(sx, 0x1.11073cp-7f);
  sx = GI_MUL(sx, z);
  sx = GI_ADD(sx, -0x1.555546p-3f);
  sx = GI_MUL(sx, z);
  sx = GI_MUL(sx, x);
  sx = GI_ADD(sx, x);
  float cx = GI_MUL(0x1.99eb9cp-16f, z);
  cx = GI_ADD(cx, -0x1.6c0c34p-10f);
  cx = GI_MUL(cx, z);
  cx = GI_ADD(cx, 0x1.55554ap-5f);
  cx = GI_MUL(cx, z);
  cx = GI_MUL(cx, z);
  cx = GI_SUB(cx, GI_MUL(z, 0.5f));
  cx = GI_ADD(cx, 1.0f);
  float cc = (q & 1) ? sx : cx, ss = (q & 1) ? cx : sx;
  *c = ((q + 1) & 2) ? -cc : cc;
  *sn = (q & 2) ? -ss : ss;
}

/* Box-Muller on a lane pair: r = sqrt(-2 log u(w0)); z0 = r cos(pi v(w1)), z1 = r sin(pi v(w1)). */
GI_HD void gi_normal_pair(uint32_t w0, uint32_t w1, float* z0, float* z1) {
  float r = GI_SQRT(GI_MUL(gi_log(gi_open_uniform(w0)), -2.0f));
  float c, s;
  gi_sincospi(gi_signed_int(w1), &c, &s);
  *z0 = GI_MUL(r, c);
  *z1 = GI_MUL(r, s);
}

/* erfinv(x) = p(w) x with w = -log((1 - x)(1 + x)), after Giles (2010): his single-precision
 * branches for w < 5 (t = w - 2.5) and w < 16 (t = sqrt(w) - 3), written as one polynomial whose
 * coefficients are selected per element, and the last branch of his double-precision version for
 * w >= 16 (t = sqrt(w) - 5). Branch-free, so that host loops vectorize; selection changes no bits.
 * `branches` (1 to 3, a constant where it is inlined): how many of them the draw reaches (docs/stream.md);
 * the others fold away. */
#define GI_SEL(c, a, b) ((c) ? (a) : (b))
GI_HD float gi_erfinv_factor_n(float w, int branches) {
  int tail = branches > 1 && w >= 5.0f;
  float sw = GI_SQRT(w), t_tail = GI_SUB(sw, 0x1.8p+1f), t_central = GI_SUB(w, 0x1.4p+1f);
  float t = GI_SEL(tail, t_tail, t_central);
  float p = GI_SEL(tail, -0x1.a3e136p-13f, 0x1.e2cb1p-26f);
  GI_STEP(p, t, GI_SEL(tail, 0x1.a76ad6p-14f, 0x1.70966cp-22f));
  GI_STEP(p, t, GI_SEL(tail, 0x1.61b8e4p-10f, -0x1.d8e6aep-19f));
  GI_STEP(p, t, GI_SEL(tail, -0x1.e17bcep-9f, -0x1.26b582p-18f));
  GI_STEP(p, t, GI_SEL(tail, 0x1.7824f6p-8f, 0x1.ca65b6p-13f));
  GI_STEP(p, t, GI_SEL(tail, -0x1.f38baep-8f, -0x1.48a81p-10f));
  GI_STEP(p, t, GI_SEL(tail, 0x1.354afcp-7f, -0x1.11c9dep-8f));
  GI_STEP(p, t, GI_SEL(tail, 0x1.006db6p+0f, 0x1.f91ec6p-3f));
  GI_STEP(p, t, GI_SEL(tail, 0x1.6a9efcp+1f, 0x1.805c5ep+0f));
  float d = GI_SUB(sw, 0x1.4p+2f);
  float q = -0x1.dcec3ap-36f;
  GI_STEP(q, d, -0x1.18feecp-32f);
  GI_STEP(q, d, 0x1.9e6bf2p-30f);
  GI_STEP(q, d, -0x1.0468fcp-28f);
  GI_STEP(q, d, 0x1.05ac6ap-27f);
  GI_STEP(q, d, -0x1.0102e4p-26f);
  GI_STEP(q, d, 0x1.f4c20ep-26f);
  GI_STEP(q, d, -0x1.22d22p-24f);
  GI_STEP(q, d, 0x1.ebc8bcp-23f);
  GI_STEP(q, d, -0x1.0a8d4p-20f);
  GI_STEP(q, d, 0x1.2fbd2ap-18f);
  GI_STEP(q, d, -0x1.4a3498p-16f);
  GI_STEP(q, d, 0x1.3ebf4ep-14f);
  GI_STEP(q, d, -0x1.c2f36ap-13f);
  GI_STEP(q, d, -0x1.22ea5ep-13f);
  GI_STEP(q, d, 0x1.02a30ep+0f);
  GI_STEP(q, d, 0x1.3664dep+2f);
  return GI_SEL(branches > 2 && w >= 16.0f, q, p);
}
GI_HD float gi_erfinv_factor(float w) { return gi_erfinv_factor_n(w, 3); }

/* Phi^-1(u) = sqrt(2) erfinv(2u - 1), with w = -log(4 u (1 - u)): no cancellation in the tails.
 * In two steps (gi_quantile_w, then gi_quantile_at), for host loops that look at w before choosing the branches. */
GI_HD float gi_quantile_w(float u) { return -gi_log(GI_MUL(GI_MUL(u, 4.0f), GI_SUB(1.0f, u))); }
GI_HD float gi_quantile_at(float u, float w, int branches) {
  float p = GI_MUL(gi_erfinv_factor_n(w, branches), GI_SUB(GI_MUL(u, 2.0f), 1.0f));
  return GI_MUL(p, GI_SQRT2);
}
GI_HD float gi_normal_quantile_n(float u, int branches) { return gi_quantile_at(u, gi_quantile_w(u), branches); }
GI_HD float gi_normal_quantile(float u) { return gi_normal_quantile_n(u, 3); }

/* Truncated normal from one word: inverse CDF on [p_lo, p_lo + p_span], clamped, un-mirrored
 * (gi_trunc_u, then the quantile, then gi_trunc_z). */
GI_HD float gi_trunc_u(uint32_t w, float p_lo, float p_span) {
  float u = GI_ADD(GI_MUL(gi_open_uniform(w), p_span), p_lo);
  return GI_CLAMP(u, GI_U_MIN, GI_U_MAX);
}
GI_HD float gi_trunc_z(float z, float z_lo, float z_hi, int flip) {
  z = GI_CLAMP(z, z_lo, z_hi);
  float nz = -z;
  return flip ? nz : z;
}
GI_HD float gi_trunc_standard_n(uint32_t w, float p_lo, float p_span, float z_lo, float z_hi, int flip,
                                int branches) {
  return gi_trunc_z(gi_normal_quantile_n(gi_trunc_u(w, p_lo, p_span), branches), z_lo, z_hi, flip);
}
GI_HD float gi_trunc_standard(uint32_t w, float p_lo, float p_span, float z_lo, float z_hi, int flip) {
  return gi_trunc_standard_n(w, p_lo, p_span, z_lo, z_hi, flip, 3);
}

/* float32 -> float16 bits, round to nearest even, subnormals and overflow included (F. Giesen's
 * float_to_half_fast3_rtne; the subnormal case aligns the mantissa by adding 0.5f). */
GI_HD uint16_t gi_half_bits(float x) {
  uint32_t u = (uint32_t)gi_f2i(x), sign = u & 0x80000000u, o;
  u ^= sign;
  if (u >= 0x47800000u) {          /* |x| >= 65536: inf (or NaN) */
    o = u > 0x7F800000u ? 0x7E00u : 0x7C00u;
  } else if (u < 0x38800000u) {    /* |x| < 2**-14: subnormal or zero */
    o = (uint32_t)gi_f2i(GI_ADD(gi_i2f((int32_t)u), 0.5f)) - 0x3F000000u;
  } else {
    o = (u + 0xC8000FFFu + ((u >> 13) & 1u)) >> 13; /* rebias the exponent by (15 - 127) << 23, round */
  }
  return (uint16_t)(o | (sign >> 16));
}

/* float32 -> bfloat16 bits, round to nearest even (values are finite). */
GI_HD uint16_t gi_bfloat16_bits(float x) {
  uint32_t b = (uint32_t)gi_f2i(x);
  return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

/* The four values of Philox block `block` for a draw whose u reach `branches` erfinv branches (3: any). */
GI_HD void gi_block_values_n(uint64_t block, uint64_t stream, uint64_t seed, const gi_params* p, int branches,
                             float v[4]) {
  uint32_t w[4];
  gi_philox(block, stream, seed, w);
  if (p->kind == GI_WORDS) {
    for (int i = 0; i < 4; ++i) v[i] = gi_i2f((int32_t)w[i]);
    return;
  }
  if (p->kind == GI_NORMAL) {
    gi_normal_pair(w[0], w[1], &v[0], &v[1]);
    gi_normal_pair(w[2], w[3], &v[2], &v[3]);
    for (int i = 0; i < 4; ++i) v[i] = GI_ADD(GI_MUL(v[i], p->scale), p->shift);
    return;
  }
  for (int i = 0; i < 4; ++i) {
    float x = p->kind == GI_UNIFORM
                  ? gi_signed_uniform(w[i])
                  : gi_trunc_standard_n(w[i], p->p_lo, p->p_span, p->z_lo, p->z_hi, p->flip, branches);
    x = GI_ADD(GI_MUL(x, p->scale), p->shift);
    v[i] = GI_CLAMP(x, p->lo, p->hi);
  }
}
GI_HD void gi_block_values(uint64_t block, uint64_t stream, uint64_t seed, const gi_params* p, float v[4]) {
  gi_block_values_n(block, stream, seed, p, 3, v);
}

#endif /* GPUINIT_STREAM_CUH */
