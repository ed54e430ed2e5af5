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
 * pixels. i8mm's SMMLA (a 2x2 block of 8-deep dot products: two pixels against
 * two channels) would need each operand as two 8-byte rows joined into one
 * register, which costs more instructions than it saves unless the weights come
 * interleaved per channel pair (a layout the schedules do not make), so the
 * dot-product path serves i8mm cores too.
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

/* sum's lanes += products of a and b (16 or 8 int8 pairs), four partial sums. */
#if defined(__ARM_FEATURE_DOTPROD)

static inline int32x4_t tvmq_mul_add_s8x16(int32x4_t sum, int8x16_t a, int8x16_t b) {
  return vdotq_s32(sum, a, b);
}

static inline int32x4_t tvmq_mul_add_s8x8(int32x4_t sum, int8x8_t a, int8x8_t b) {
  int32x2_t half = vdot_s32(vdup_n_s32(0), a, b);
  return vaddq_s32(sum, vcombine_s32(half, vdup_n_s32(0)));
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
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                                \
      int32_t total = acc[j] + tvmq_sum_s32x4(sum[j]);                                   \
      for (int32_t r = i; r < k; ++r) total += (int32_t)a[r] * b[j * b_stride + r];      \
      acc[j] = total;                                                                    \
    }                                                                                    \
    return 0;                                                                            \
  }

/* Two output pixels (input runs a_stride bytes apart, accumulators acc_stride apart)
   against the same N channels: each weight vector is loaded once for both. */
#define TVMQ_DOT2_NATIVE
#define TVMQ_DOT2_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_2x##N(void *acc_, void *a_, void *b_, int32_t k,       \
                                          int32_t b_stride, int32_t a_stride,            \
                                          int32_t acc_stride) {                          \
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
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                                \
      int32_t t0 = acc[j] + tvmq_sum_s32x4(s0[j]);                                       \
      int32_t t1 = acc[acc_stride + j] + tvmq_sum_s32x4(s1[j]);                          \
      for (int32_t r = i; r < k; ++r) {                                                  \
        t0 += (int32_t)a0[r] * b[j * b_stride + r];                                      \
        t1 += (int32_t)a1[r] * b[j * b_stride + r];                                      \
      }                                                                                  \
      acc[j] = t0;                                                                       \
      acc[acc_stride + j] = t1;                                                          \
    }                                                                                    \
    return 0;                                                                            \
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
