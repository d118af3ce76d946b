/* Checksums of tensor data for gpuinit.fingerprint (gpuinit/distributed.py), bit for bit the torch
 * reference there (block_checksum_reference): element e contributes
 *     mix(index(e) * K1 ^ mix(bits(e)))
 * summed mod 2**64, where bits(e) is the element's raw bits sign-extended to 64 (int8/16/32 -> int64),
 * index(e) its row-major index in the full tensor, and mix the splitmix64-style finalizer on int64 with
 * arithmetic right shifts and wrapping products. Compiled with gpuinit_cpu.c into the host kernel
 * library (gpuinit/backends/cpu_kernel.py); read-only, called through ctypes from worker threads.
 * The loops are plain so that the compiler vectorizes them (-O3 -march=native). */
#include <stdint.h>

#define GI_CK1 0x9E3779B97F4A7C15ull
#define GI_CK2 0xBF58476D1CE4E5B9ull
#define GI_CK3 0x94D049BB133111EBull

/* Arithmetic shifts: C leaves >> of a negative signed value to the implementation; gcc and clang shift
 * arithmetically. Products are taken on uint64_t, so they wrap without undefined behaviour. */
static inline uint64_t gi_ck_mix(uint64_t u) {
  int64_t x = (int64_t)u;
  x ^= x >> 30;
  x = (int64_t)((uint64_t)x * GI_CK2);
  x ^= x >> 27;
  x = (int64_t)((uint64_t)x * GI_CK3);
  x ^= x >> 31;
  return (uint64_t)x;
}

#define GI_CK_SUM(T)                                                                     \
  static uint64_t gi_ck_sum_##T(const T* restrict d, uint64_t start, uint64_t n) {       \
    uint64_t s = 0;                                                                      \
    for (uint64_t t = 0; t < n; ++t)                                                     \
      s += gi_ck_mix((start + t) * GI_CK1 ^ gi_ck_mix((uint64_t)(int64_t)d[t]));         \
    return s;                                                                            \
  }
GI_CK_SUM(int8_t)
GI_CK_SUM(int16_t)
GI_CK_SUM(int32_t)
GI_CK_SUM(int64_t)

/* The sum over n consecutive elements of elem_size bytes at data, of global indices start .. start + n - 1
 * (0 for an element size other than 1, 2, 4 and 8). */
static uint64_t gi_ck_run(const void* data, uint64_t elem_size, uint64_t start, uint64_t n) {
  switch (elem_size) {
    case 1: return gi_ck_sum_int8_t((const int8_t*)data, start, n);
    case 2: return gi_ck_sum_int16_t((const int16_t*)data, start, n);
    case 4: return gi_ck_sum_int32_t((const int32_t*)data, start, n);
    case 8: return gi_ck_sum_int64_t((const int64_t*)data, start, n);
    default: return 0;
  }
}

/* Segments: seg[4 * i .. 4 * i + 3] = data address, element size, global index of the first element,
 * elements (contiguous). out[i] = the sum of segment i. */
void gi_cpu_checksums(const uint64_t* seg, uint64_t nseg, uint64_t* out) {
  for (uint64_t i = 0; i < nseg; ++i, seg += 4)
    out[i] = gi_ck_run((const void*)(uintptr_t)seg[0], seg[1], seg[2], seg[3]);
}

/* Runs: element r * length + t of data (contiguous, row-major) has global index starts[r] + t.
 * Returns the sum over all nruns * length elements. */
uint64_t gi_cpu_checksum_runs(const void* data, uint64_t elem_size, const uint64_t* starts, uint64_t nruns,
                              uint64_t length) {
  const char* p = (const char*)data;
  uint64_t s = 0;
  for (uint64_t r = 0; r < nruns; ++r) s += gi_ck_run(p + r * length * elem_size, elem_size, starts[r], length);
  return s;
}
