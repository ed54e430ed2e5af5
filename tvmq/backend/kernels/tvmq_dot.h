/* int8 dot-product micro-kernels called by tvmq's tensorized convolutions.
 *
 * tvmq_dot_s8_1xN(acc, a, b, k, b_stride): acc[j] += sum_i a[i] * b[j * b_stride + i]
 * for j < N, i < k (int32 acc, int8 a and b): one input run against N output
 * channels' weights, both contiguous. The input run is loaded and widened once
 * and reused N times. The pointers are void * because TVM declares the functions
 * it calls that way (its declaration follows this one and agrees with it).
 *
 * tvmq_dot_s8_2xN(acc, a, b, k, b_stride, a_stride, acc_stride): the same for two
 * input runs a_stride bytes apart (two output pixels), into acc[j] and
 * acc[acc_stride + j]: each weight vector serves both. tvmq_dot_s8_2xN_no_mmla is
 * the same without SMMLA on i8mm cores (a tuning choice), the same function elsewhere.
 * tvmq_dot_s8_rowxN(..., count): count pixels a_stride bytes apart, in pairs and a tail.
 *
 * tvmq_dw_s8x4(acc, x, w, kh, kw, x_row, x_col, w_row, w_col): a depthwise window
 * for four channels; the strides are in bytes between window rows and columns.
 * tvmq_dw_s8x4_row(..., count, x_pixel, acc_pixel): the windows of count output pixels.
 *
 * Four implementations of the same arithmetic, chosen by the compiler's feature
 * macros: Helium (MVE, Cortex-M55: 16 multiply-accumulates per VMLADAVA), NEON
 * (Cortex-A: SDOT, SMMLA or SMULL + SADALP, tvmq_dot_neon.h), the DSP extension
 * (Cortex-M4/M7/M33: SXTB16 + SMLAD, two per instruction), and plain C (any
 * host). Integer sums are exact, so all four give the same result.
 */
#ifndef TVMQ_DOT_H
#define TVMQ_DOT_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>

/* Whole 16-byte runs unpredicated (a predicated load needs its own VPST), then at
   most one predicated tail. */
#define TVMQ_DOT_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_1x##N(void *acc_, void *a_, void *b_, int32_t k,       \
                                          int32_t b_stride) {                            \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a = a_, *b = b_;                                                       \
    int32_t sum[N];                                                                      \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) sum[j] = acc[j];                 \
    int32_t i = 0;                                                                       \
    for (; i + 16 <= k; i += 16) {                                                       \
      int8x16_t va = vldrbq_s8(a + i);                                                   \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j)                                \
        sum[j] = vmladavaq_s8(sum[j], va, vldrbq_s8(b + j * b_stride + i));              \
    }                                                                                    \
    if (i < k) {                                                                         \
      mve_pred16_t p = vctp8q((uint32_t)(k - i));                                        \
      int8x16_t va = vldrbq_z_s8(a + i, p);                                              \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j)                                \
        sum[j] = vmladavaq_p_s8(sum[j], va, vldrbq_z_s8(b + j * b_stride + i, p), p);    \
    }                                                                                    \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] = sum[j];                 \
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
    int32_t s0[N], s1[N];                                                                \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) s0[j] = acc[j], s1[j] = acc[acc_stride + j]; \
    int32_t i = 0;                                                                       \
    for (; i + 16 <= k; i += 16) {                                                       \
      int8x16_t x0 = vldrbq_s8(a0 + i), x1 = vldrbq_s8(a1 + i);                          \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                              \
        int8x16_t w = vldrbq_s8(b + j * b_stride + i);                                   \
        s0[j] = vmladavaq_s8(s0[j], x0, w);                                              \
        s1[j] = vmladavaq_s8(s1[j], x1, w);                                              \
      }                                                                                  \
    }                                                                                    \
    if (i < k) {                                                                         \
      mve_pred16_t p = vctp8q((uint32_t)(k - i));                                        \
      int8x16_t x0 = vldrbq_z_s8(a0 + i, p), x1 = vldrbq_z_s8(a1 + i, p);                \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                              \
        int8x16_t w = vldrbq_z_s8(b + j * b_stride + i, p);                              \
        s0[j] = vmladavaq_p_s8(s0[j], x0, w, p);                                         \
        s1[j] = vmladavaq_p_s8(s1[j], x1, w, p);                                         \
      }                                                                                  \
    }                                                                                    \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] = s0[j], acc[acc_stride + j] = s1[j]; \
    return 0;                                                                            \
  }

/* Depthwise: acc[j] += sum over the kh x kw window of x[r, c, j] * w[r, c, j], j < 4. */
static inline int32_t tvmq_dw_s8x4(void *acc_, void *x_, void *w_, int32_t kh, int32_t kw,
                                   int32_t x_row, int32_t x_col, int32_t w_row, int32_t w_col) {
  int32_t *acc = acc_;
  const int8_t *x = x_, *w = w_;
  int32x4_t sum = vldrwq_s32(acc);
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c) {
      sum = vaddq_s32(sum, vmulq_s32(vldrbq_s32(x + r * x_row + c * x_col),
                                     vldrbq_s32(w + r * w_row + c * w_col)));
      /* Keeps the sum in order: reassociated, an unrolled window's products are all
         computed first and spill (eight vector registers). */
      __asm__("" : "+w"(sum));
    }
  vstrwq_s32(acc, sum);
  return 0;
}

/* Four pixels x_pixel bytes apart (accumulators acc_pixel apart): each weight vector
   is loaded once for the four (Helium has no vector-by-vector integer VMLA, so VMUL +
   VADD; seven of its eight vector registers). */
#define TVMQ_DW4_NATIVE
static inline int32_t tvmq_dw_s8x4_x4(int32_t *acc, const int8_t *x, const int8_t *w,
                                      int32_t kh, int32_t kw, int32_t x_row, int32_t x_col,
                                      int32_t w_row, int32_t w_col, int32_t x_pixel,
                                      int32_t acc_pixel) {
  int32x4_t s0 = vldrwq_s32(acc), s1 = vldrwq_s32(acc + acc_pixel);
  int32x4_t s2 = vldrwq_s32(acc + 2 * acc_pixel), s3 = vldrwq_s32(acc + 3 * acc_pixel);
  _Pragma("GCC unroll 1") for (int32_t r = 0; r < kh; ++r) {
    const int8_t *xr = x + r * x_row, *wr = w + r * w_row;
    _Pragma("GCC unroll 1") for (int32_t c = 0; c < kw; ++c, xr += x_col, wr += w_col) {
      int32x4_t vw = vldrbq_s32(wr);
      s0 = vaddq_s32(s0, vmulq_s32(vldrbq_s32(xr), vw));
      s1 = vaddq_s32(s1, vmulq_s32(vldrbq_s32(xr + x_pixel), vw));
      s2 = vaddq_s32(s2, vmulq_s32(vldrbq_s32(xr + 2 * x_pixel), vw));
      s3 = vaddq_s32(s3, vmulq_s32(vldrbq_s32(xr + 3 * x_pixel), vw));
    }
  }
  vstrwq_s32(acc, s0), vstrwq_s32(acc + acc_pixel, s1);
  vstrwq_s32(acc + 2 * acc_pixel, s2), vstrwq_s32(acc + 3 * acc_pixel, s3);
  return 0;
}

/* The same for two pixels (a row's tail). */
#define TVMQ_DW2_NATIVE
static inline int32_t tvmq_dw_s8x4_x2(int32_t *acc, const int8_t *x, const int8_t *w,
                                      int32_t kh, int32_t kw, int32_t x_row, int32_t x_col,
                                      int32_t w_row, int32_t w_col, int32_t x_pixel,
                                      int32_t acc_pixel) {
  int32x4_t s0 = vldrwq_s32(acc), s1 = vldrwq_s32(acc + acc_pixel);
  _Pragma("GCC unroll 1") for (int32_t r = 0; r < kh; ++r) {
    const int8_t *xr = x + r * x_row, *wr = w + r * w_row;
    _Pragma("GCC unroll 1") for (int32_t c = 0; c < kw; ++c, xr += x_col, wr += w_col) {
      int32x4_t vw = vldrbq_s32(wr);
      s0 = vaddq_s32(s0, vmulq_s32(vldrbq_s32(xr), vw));
      s1 = vaddq_s32(s1, vmulq_s32(vldrbq_s32(xr + x_pixel), vw));
    }
  }
  vstrwq_s32(acc, s0), vstrwq_s32(acc + acc_pixel, s1);
  return 0;
}

#elif defined(__ARM_NEON) /* Cortex-A; before DSP, which ARMv7-A also has */
#include "tvmq_dot_neon.h"

#elif defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>

static inline int32_t tvmq_load_s8x4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4); /* one (unaligned) LDR */
  return v;
}

/* SXTB16 with its free ROR #8 operand (gcc does not fold a separate rotate into it). */
static inline int16x2_t tvmq_sxtb16_ror8(int32_t x) {
  int16x2_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

/* SXTB16 of x and of x rotated by 8 widens bytes (0, 2) and (1, 3) to int16 pairs;
   both operands are split the same way, so two SMLADs sum all four products. */
#define TVMQ_DOT_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_1x##N(void *acc_, void *a_, void *b_, int32_t k,       \
                                          int32_t b_stride) {                            \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a = a_, *b = b_;                                                       \
    int32_t sum[N];                                                                      \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) sum[j] = acc[j];                                         \
    int32_t i = 0;                                                                       \
    for (; i + 4 <= k; i += 4) {                                                         \
      int32_t va = tvmq_load_s8x4(a + i);                                                \
      int16x2_t a_even = __sxtb16(va), a_odd = tvmq_sxtb16_ror8(va);         \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                                                      \
        int32_t vb = tvmq_load_s8x4(b + j * b_stride + i);                               \
        sum[j] = __smlad(a_even, __sxtb16(vb), sum[j]);                                  \
        sum[j] = __smlad(a_odd, tvmq_sxtb16_ror8(vb), sum[j]);               \
      }                                                                                  \
    }                                                                                    \
    for (; i < k; ++i)                                                                   \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) sum[j] += (int32_t)a[i] * b[j * b_stride + i];         \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] = sum[j];                                         \
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
    int32_t s0[N], s1[N];                                                                \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) s0[j] = acc[j], s1[j] = acc[acc_stride + j]; \
    int32_t i = 0;                                                                       \
    for (; i + 4 <= k; i += 4) {                                                         \
      int32_t x0 = tvmq_load_s8x4(a0 + i), x1 = tvmq_load_s8x4(a1 + i);                  \
      int16x2_t x0e = __sxtb16(x0), x0o = tvmq_sxtb16_ror8(x0);                          \
      int16x2_t x1e = __sxtb16(x1), x1o = tvmq_sxtb16_ror8(x1);                          \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                              \
        int32_t w = tvmq_load_s8x4(b + j * b_stride + i);                                \
        int16x2_t we = __sxtb16(w), wo = tvmq_sxtb16_ror8(w);                            \
        s0[j] = __smlad(x0o, wo, __smlad(x0e, we, s0[j]));                               \
        s1[j] = __smlad(x1o, wo, __smlad(x1e, we, s1[j]));                               \
      }                                                                                  \
    }                                                                                    \
    for (; i < k; ++i)                                                                   \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                              \
        s0[j] += (int32_t)a0[i] * b[j * b_stride + i];                                   \
        s1[j] += (int32_t)a1[i] * b[j * b_stride + i];                                   \
      }                                                                                  \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] = s0[j], acc[acc_stride + j] = s1[j]; \
    return 0;                                                                            \
  }

/* Depthwise: acc[j] += sum over the kh x kw window of x[r, c, j] * w[r, c, j], j < 4.
   Lanes (0, 2) and (1, 3) are widened apart; SMLABB / SMLATT multiply-accumulate each. */
static inline int32_t tvmq_dw_s8x4(void *acc_, void *x_, void *w_, int32_t kh, int32_t kw,
                                   int32_t x_row, int32_t x_col, int32_t w_row, int32_t w_col) {
  int32_t *acc = acc_;
  const int8_t *x = x_, *w = w_;
  int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c) {
      int32_t vx = tvmq_load_s8x4(x + r * x_row + c * x_col);
      int32_t vw = tvmq_load_s8x4(w + r * w_row + c * w_col);
      int16x2_t x_even = __sxtb16(vx), w_even = __sxtb16(vw);
      int16x2_t x_odd = tvmq_sxtb16_ror8(vx), w_odd = tvmq_sxtb16_ror8(vw);
      s0 = __smlabb(x_even, w_even, s0);
      s2 = __smlatt(x_even, w_even, s2);
      s1 = __smlabb(x_odd, w_odd, s1);
      s3 = __smlatt(x_odd, w_odd, s3);
    }
  acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
  return 0;
}

/* Two pixels x_pixel bytes apart (accumulators acc_pixel apart): each weight word is
   loaded and widened once for both. */
#define TVMQ_DW2_NATIVE
static inline int32_t tvmq_dw_s8x4_x2(int32_t *acc, const int8_t *x, const int8_t *w,
                                      int32_t kh, int32_t kw, int32_t x_row, int32_t x_col,
                                      int32_t w_row, int32_t w_col, int32_t x_pixel,
                                      int32_t acc_pixel) {
  int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
  int32_t t0 = acc[acc_pixel], t1 = acc[acc_pixel + 1];
  int32_t t2 = acc[acc_pixel + 2], t3 = acc[acc_pixel + 3];
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c) {
      int32_t vw = tvmq_load_s8x4(w + r * w_row + c * w_col);
      int16x2_t w_even = __sxtb16(vw), w_odd = tvmq_sxtb16_ror8(vw);
      int32_t vx = tvmq_load_s8x4(x + r * x_row + c * x_col);
      int16x2_t x_even = __sxtb16(vx), x_odd = tvmq_sxtb16_ror8(vx);
      s0 = __smlabb(x_even, w_even, s0);
      s2 = __smlatt(x_even, w_even, s2);
      s1 = __smlabb(x_odd, w_odd, s1);
      s3 = __smlatt(x_odd, w_odd, s3);
      int32_t vy = tvmq_load_s8x4(x + x_pixel + r * x_row + c * x_col);
      int16x2_t y_even = __sxtb16(vy), y_odd = tvmq_sxtb16_ror8(vy);
      t0 = __smlabb(y_even, w_even, t0);
      t2 = __smlatt(y_even, w_even, t2);
      t1 = __smlabb(y_odd, w_odd, t1);
      t3 = __smlatt(y_odd, w_odd, t3);
    }
  acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
  acc[acc_pixel] = t0, acc[acc_pixel + 1] = t1, acc[acc_pixel + 2] = t2, acc[acc_pixel + 3] = t3;
  return 0;
}

#else

#define TVMQ_DOT_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_1x##N(void *acc_, void *a_, void *b_, int32_t k,       \
                                          int32_t b_stride) {                            \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a = a_, *b = b_;                                                       \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                                                        \
      int32_t sum = acc[j];                                                              \
      for (int32_t i = 0; i < k; ++i) sum += (int32_t)a[i] * b[j * b_stride + i];        \
      acc[j] = sum;                                                                      \
    }                                                                                    \
    return 0;                                                                            \
  }


/* Depthwise: acc[j] += sum over the kh x kw window of x[r, c, j] * w[r, c, j], j < 4. */
static inline int32_t tvmq_dw_s8x4(void *acc_, void *x_, void *w_, int32_t kh, int32_t kw,
                                   int32_t x_row, int32_t x_col, int32_t w_row, int32_t w_col) {
  int32_t *acc = acc_;
  const int8_t *x = x_, *w = w_;
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c)
      for (int j = 0; j < 4; ++j)
        acc[j] += (int32_t)x[r * x_row + c * x_col + j] * w[r * w_row + c * w_col + j];
  return 0;
}

#endif

TVMQ_DOT_DEFINE(1)
TVMQ_DOT_DEFINE(2)
TVMQ_DOT_DEFINE(4)

#ifndef TVMQ_DOT2_NATIVE /* plain C: one pixel at a time */
#define TVMQ_DOT2_DEFINE(N)                                                              \
  static inline int32_t tvmq_dot_s8_2x##N(void *acc, void *a, void *b, int32_t k,          \
                                          int32_t b_stride, int32_t a_stride,            \
                                          int32_t acc_stride) {                          \
    tvmq_dot_s8_1x##N(acc, a, b, k, b_stride);                                           \
    return tvmq_dot_s8_1x##N((int32_t *)acc + acc_stride, (int8_t *)a + a_stride, b, k,  \
                             b_stride);                                                  \
  }
#endif
TVMQ_DOT2_DEFINE(1)
TVMQ_DOT2_DEFINE(2)
TVMQ_DOT2_DEFINE(4)

/* A whole row of `count` output pixels (input runs a_stride bytes apart, accumulators
   acc_stride apart): pixel pairs, then one pixel when count is odd, so rows of odd
   length (KWS's 25x5 outputs) keep the pairs' shared weight loads. */
#define TVMQ_DOTROW_DEFINE(N)                                                           \
  static inline int32_t tvmq_dot_s8_rowx##N(void *acc_, void *a_, void *b, int32_t k,    \
                                            int32_t b_stride, int32_t a_stride,          \
                                            int32_t acc_stride, int32_t count) {         \
    int32_t *acc = acc_;                                                                 \
    int8_t *a = a_;                                                                      \
    int32_t p = 0;                                                                       \
    for (; p + 2 <= count; p += 2)                                                       \
      tvmq_dot_s8_2x##N(acc + p * acc_stride, a + p * a_stride, b, k, b_stride, a_stride, \
                        acc_stride);                                                     \
    if (p < count) tvmq_dot_s8_1x##N(acc + p * acc_stride, a + p * a_stride, b, k, b_stride); \
    return 0;                                                                            \
  }
TVMQ_DOTROW_DEFINE(1)
TVMQ_DOTROW_DEFINE(2)
TVMQ_DOTROW_DEFINE(4)

/* Depthwise windows of a row of `count` output pixels, x_pixel input bytes and
   acc_pixel accumulators apart: fours (Helium) and pairs (Helium, DSP) sharing each
   weight load where the core has them, then one pixel at a time. */
static inline int32_t tvmq_dw_s8x4_row(void *acc_, void *x_, void *w, int32_t kh, int32_t kw,
                                       int32_t x_row, int32_t x_col, int32_t w_row,
                                       int32_t w_col, int32_t count, int32_t x_pixel,
                                       int32_t acc_pixel) {
  int32_t *acc = acc_;
  int8_t *x = x_;
  int32_t p = 0;
#ifdef TVMQ_DW4_NATIVE
  for (; p + 4 <= count; p += 4)
    tvmq_dw_s8x4_x4(acc + p * acc_pixel, x + p * x_pixel, w, kh, kw, x_row, x_col, w_row,
                    w_col, x_pixel, acc_pixel);
#endif
#ifdef TVMQ_DW2_NATIVE
  for (; p + 2 <= count; p += 2)
    tvmq_dw_s8x4_x2(acc + p * acc_pixel, x + p * x_pixel, w, kh, kw, x_row, x_col, w_row,
                    w_col, x_pixel, acc_pixel);
#endif
  for (; p < count; ++p)
    tvmq_dw_s8x4(acc + p * acc_pixel, x + p * x_pixel, w, kh, kw, x_row, x_col, w_row, w_col);
  return 0;
}

#ifndef TVMQ_DOT2_NO_MMLA_NATIVE
#define tvmq_dot_s8_2x1_no_mmla tvmq_dot_s8_2x1
#define tvmq_dot_s8_2x2_no_mmla tvmq_dot_s8_2x2
#define tvmq_dot_s8_2x4_no_mmla tvmq_dot_s8_2x4
#endif

#include "tvmq_requant.h" /* the epilogues of the same tensorized kernels */
#include "tvmq_dense.h"   /* dense layers on interleaved weights (tvmq.backend.dense) */
#include "tvmq_sparse.h"  /* sparse weights (tvmq.backend.sparse) */
#include "tvmq_s4.h"      /* their int4-weight forms (tvmq.backend.int4) */

#endif /* TVMQ_DOT_H */
