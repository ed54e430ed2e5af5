/* NEON implementations of tvmq_dot.h's micro-kernels (Cortex-A, AArch64 and ARMv7-A).
 *
 * Included by tvmq_dot.h when the compiler targets NEON; the contract of each
 * function is documented there. Two paths for the dot products:
 *
 * - the dot-product extension (__ARM_FEATURE_DOTPROD: Cortex-A76/A55 and later,
 *   -march=armv8.2-a+dotprod): SDOT multiplies 16 int8 pairs and adds them, four
 *   at a time, into the four int32 lanes of an accumulator, one instruction per
 *   16 multiply-accumulates;
 * - plain NEON (Cortex-A72, ARMv7-A): SMULL widens 8 products to int16 and
 *   SADALP adds them pairwise into int32 lanes. Each product fits in int16
 *   (|-128 * -128| = 16384), a sum of two may not, so no SMLAL into int16: the
 *   arithmetic stays exact for every int8 input, -128 included.
 *
 * The two-pixel calls (tvmq_dot_s8_2xN) load each weight vector once for both
 * pixels. Where i8mm exists (__ARM_FEATURE_MATMUL_INT8) they use SMMLA for
 * channel pairs: a 2x2 block of 8-deep dot products (two pixels against two
 * channels) per instruction, and no lanes to add across at the end; each operand
 * is two 8-byte rows zipped into one register, so the inner loop is longer than
 * SDOT's (19 instructions per 16 bytes against 17 for four channels) and SMMLA
 * gains only where the calls are short. Weights interleaved per channel pair
 * would drop the zips of the weights; the schedules do not make that layout.
 *
 * Lanes are summed across only at the end of a call; k's remainder after the
 * 16- and 8-wide steps is done in scalar code.
 */
#ifndef TVMQ_DOT_NEON_H
#define TVMQ_DOT_NEON_H

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

static inline int32_t tvmq_sum_s32x4(int32x4_t v) {
#if defined(__aarch64__)
  return vaddvq_s32(v);
#else
  int32x2_t half = vadd_s32(vget_low_s32(v), vget_high_s32(v));
  return vget_lane_s32(vpadd_s32(half, half), 0);
#endif
}

/* acc[j] += the sum of sum[j]'s lanes, for j < n (a constant once inlined). AArch64
   adds pairwise across two vectors: four channels' sums in three instructions. */
static inline void tvmq_add_lane_sums(int32_t *acc, const int32x4_t *sum, int n) {
#if defined(__aarch64__)
  if (n == 4) {
    int32x4_t t = vpaddq_s32(vpaddq_s32(sum[0], sum[1]), vpaddq_s32(sum[2], sum[3]));
    vst1q_s32(acc, vaddq_s32(vld1q_s32(acc), t));
    return;
  }
  if (n == 2) {
    int32x4_t t = vpaddq_s32(sum[0], sum[1]);
    vst1_s32(acc, vadd_s32(vld1_s32(acc), vpadd_s32(vget_low_s32(t), vget_high_s32(t))));
    return;
  }
#endif
  for (int j = 0; j < n; ++j) acc[j] += tvmq_sum_s32x4(sum[j]);
}

/* sum's lanes += products of a and b (16 or 8 int8 pairs), four partial sums. */
#if defined(__ARM_FEATURE_DOTPROD)

static inline int32x4_t tvmq_mul_add_s8x16(int32x4_t sum, int8x16_t a, int8x16_t b) {
  return vdotq_s32(sum, a, b);
}

/* The upper halves zero: a 64-bit load already clears them. */
static inline int32x4_t tvmq_mul_add_s8x8(int32x4_t sum, int8x8_t a, int8x8_t b) {
  return vdotq_s32(sum, vcombine_s8(a, vdup_n_s8(0)), vcombine_s8(b, vdup_n_s8(0)));
}

#else

static inline int32x4_t tvmq_mul_add_s8x8(int32x4_t sum, int8x8_t a, int8x8_t b) {
  return vpadalq_s16(sum, vmull_s8(a, b));
}

static inline int32x4_t tvmq_mul_add_s8x16(int32x4_t sum, int8x16_t a, int8x16_t b) {
  sum = tvmq_mul_add_s8x8(sum, vget_low_s8(a), vget_low_s8(b));
  return tvmq_mul_add_s8x8(sum, vget_high_s8(a), vget_high_s8(b));
}

#endif

#define TVMQ_DOT_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_1x##N(void *acc_, void *a_, void *b_, int32_t k,       \
                                          int32_t b_stride) {                            \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a = a_, *b = b_;                                                       \
    int32x4_t sum[N];                                                                    \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) sum[j] = vdupq_n_s32(0);         \
    int32_t i = 0;                                                                       \
    for (; i + 16 <= k; i += 16) {                                                       \
      int8x16_t va = vld1q_s8(a + i);                                                    \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j)                                \
        sum[j] = tvmq_mul_add_s8x16(sum[j], va, vld1q_s8(b + j * b_stride + i));         \
    }                                                                                    \
    if (i + 8 <= k) {                                                                    \
      int8x8_t va = vld1_s8(a + i);                                                      \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j)                                \
        sum[j] = tvmq_mul_add_s8x8(sum[j], va, vld1_s8(b + j * b_stride + i));           \
      i += 8;                                                                            \
    }                                                                                    \
    tvmq_add_lane_sums(acc, sum, N);                                                     \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j)                                  \
      for (int32_t r = i; r < k; ++r) acc[j] += (int32_t)a[r] * b[j * b_stride + r];     \
    return 0;                                                                            \
  }

/* The two pixels' scalar remainder, from depth i on. */
static inline int32_t tvmq_dot2_tail(int32_t *acc, const int8_t *a0, const int8_t *a1,
                                     const int8_t *b, int32_t i, int32_t k, int32_t b_stride,
                                     int32_t acc_stride, int n) {
  for (int j = 0; j < n; ++j)
    for (int32_t r = i; r < k; ++r) {
      acc[j] += (int32_t)a0[r] * b[j * b_stride + r];
      acc[acc_stride + j] += (int32_t)a1[r] * b[j * b_stride + r];
    }
  return 0;
}

#if defined(__ARM_FEATURE_MATMUL_INT8)

/* Two 8-byte rows of two runs side by side: (x[0:8], y[0:8]) or (x[8:16], y[8:16]). */
static inline int8x16_t tvmq_rows_low(int8x16_t x, int8x16_t y) {
  return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(x), vreinterpretq_s64_s8(y)));
}
static inline int8x16_t tvmq_rows_high(int8x16_t x, int8x16_t y) {
  return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(x), vreinterpretq_s64_s8(y)));
}

/* i8mm: SMMLA multiplies two 8-byte rows (the two pixels) by two (a channel pair)
   into a 2x2 block of int32 sums, [p0 c, p0 c+1, p1 c, p1 c+1]: no lanes to add
   across at the end, which is what makes it pay on short runs. n is even. */
static inline int32_t tvmq_dot2_mmla(int32_t *acc, const int8_t *a0, const int8_t *a1,
                                     const int8_t *b, int32_t k, int32_t b_stride,
                                     int32_t acc_stride, int n) {
  int32x4_t m[2];
  _Pragma("GCC unroll 2") for (int j = 0; j < n / 2; ++j) m[j] = vdupq_n_s32(0);
  int32_t i = 0;
  for (; i + 16 <= k; i += 16) {
    int8x16_t x0 = vld1q_s8(a0 + i), x1 = vld1q_s8(a1 + i);
    int8x16_t low = tvmq_rows_low(x0, x1), high = tvmq_rows_high(x0, x1);
    _Pragma("GCC unroll 2") for (int j = 0; j < n / 2; ++j) {
      int8x16_t w0 = vld1q_s8(b + 2 * j * b_stride + i);
      int8x16_t w1 = vld1q_s8(b + (2 * j + 1) * b_stride + i);
      m[j] = vmmlaq_s32(m[j], low, tvmq_rows_low(w0, w1));
      m[j] = vmmlaq_s32(m[j], high, tvmq_rows_high(w0, w1));
    }
  }
  if (i + 8 <= k) {
    int8x16_t x = vcombine_s8(vld1_s8(a0 + i), vld1_s8(a1 + i));
    _Pragma("GCC unroll 2") for (int j = 0; j < n / 2; ++j) {
      int8x8_t w0 = vld1_s8(b + 2 * j * b_stride + i);
      m[j] = vmmlaq_s32(m[j], x, vcombine_s8(w0, vld1_s8(b + (2 * j + 1) * b_stride + i)));
    }
    i += 8;
  }
  _Pragma("GCC unroll 2") for (int j = 0; j < n / 2; ++j) {
    int32_t *p0 = acc + 2 * j, *p1 = acc + acc_stride + 2 * j;
    vst1_s32(p0, vadd_s32(vld1_s32(p0), vget_low_s32(m[j])));
    vst1_s32(p1, vadd_s32(vld1_s32(p1), vget_high_s32(m[j])));
  }
  return tvmq_dot2_tail(acc, a0, a1, b, i, k, b_stride, acc_stride, n);
}

/* Channel pairs (N even) go to SMMLA; one channel stays on the dot product. */
#define TVMQ_DOT2_BY_PAIRS(N)                                                           \
  if (N % 2 == 0)                                                                       \
    return tvmq_dot2_mmla(acc, a, (const int8_t *)a + a_stride, b, k, b_stride, acc_stride, N);
#else
#define TVMQ_DOT2_BY_PAIRS(N)
#endif

/* Two output pixels (input runs a_stride bytes apart, accumulators acc_stride apart)
   against the same N channels: each weight vector is loaded once for both.
   tvmq_dot_s8_2xN_no_mmla never uses SMMLA (a tuning choice on i8mm cores). */
#define TVMQ_DOT2_NATIVE
#define TVMQ_DOT2_NO_MMLA_NATIVE
#define TVMQ_DOT2_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_2x##N##_no_mmla(void *acc_, void *a_, void *b_,        \
                                                    int32_t k, int32_t b_stride,         \
                                                    int32_t a_stride, int32_t acc_stride) { \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a0 = a_, *a1 = (const int8_t *)a_ + a_stride, *b = b_;                 \
    int32x4_t s0[N], s1[N];                                                              \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) s0[j] = s1[j] = vdupq_n_s32(0);  \
    int32_t i = 0;                                                                       \
    for (; i + 16 <= k; i += 16) {                                                       \
      int8x16_t x0 = vld1q_s8(a0 + i), x1 = vld1q_s8(a1 + i);                            \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                              \
        int8x16_t w = vld1q_s8(b + j * b_stride + i);                                    \
        s0[j] = tvmq_mul_add_s8x16(s0[j], x0, w);                                        \
        s1[j] = tvmq_mul_add_s8x16(s1[j], x1, w);                                        \
      }                                                                                  \
    }                                                                                    \
    if (i + 8 <= k) {                                                                    \
      int8x8_t x0 = vld1_s8(a0 + i), x1 = vld1_s8(a1 + i);                               \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                              \
        int8x8_t w = vld1_s8(b + j * b_stride + i);                                      \
        s0[j] = tvmq_mul_add_s8x8(s0[j], x0, w);                                         \
        s1[j] = tvmq_mul_add_s8x8(s1[j], x1, w);                                         \
      }                                                                                  \
      i += 8;                                                                            \
    }                                                                                    \
    tvmq_add_lane_sums(acc, s0, N);                                                      \
    tvmq_add_lane_sums(acc + acc_stride, s1, N);                                         \
    return tvmq_dot2_tail(acc, a0, a1, b, i, k, b_stride, acc_stride, N);                \
  }                                                                                      \
  static inline int32_t tvmq_dot_s8_2x##N(void *acc, void *a, void *b, int32_t k,          \
                                          int32_t b_stride, int32_t a_stride,            \
                                          int32_t acc_stride) {                          \
    TVMQ_DOT2_BY_PAIRS(N)                                                                \
    return tvmq_dot_s8_2x##N##_no_mmla(acc, a, b, k, b_stride, a_stride, acc_stride);    \
  }

/* Four int8 lanes widened to int16 (the four bytes need no alignment). */
static inline int16x4_t tvmq_load_s8x4_s16(const int8_t *p) {
  int32_t bytes;
  memcpy(&bytes, p, 4);
  return vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(bytes))));
}

/* Depthwise: four channels, one SMLAL (int16 x int16 into int32) per window tap. */
static inline int32_t tvmq_dw_s8x4(void *acc_, void *x_, void *w_, int32_t kh, int32_t kw,
                                   int32_t x_row, int32_t x_col, int32_t w_row, int32_t w_col) {
  int32_t *acc = acc_;
  const int8_t *x = x_, *w = w_;
  int32x4_t sum = vld1q_s32(acc);
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c)
      sum = vmlal_s16(sum, tvmq_load_s8x4_s16(x + r * x_row + c * x_col),
                      tvmq_load_s8x4_s16(w + r * w_row + c * w_col));
  vst1q_s32(acc, sum);
  return 0;
}

#endif /* TVMQ_DOT_NEON_H */
