/* int8 x int4 dot-product micro-kernels: the int4-weight forms of tvmq_dot.h's.
 *
 * Weights are packed two per byte in CMSIS-NN's order: element e of a weight tensor
 * is the low nibble of byte e / 2 when e is even, the high nibble when it is odd,
 * signed 4-bit (tvmq packs [-7, 7]). Weight positions and strides are therefore
 * given in elements, not bytes, from the tensor's start `w`:
 *
 * tvmq_dot_s4_1xN(acc, a, w, w_at, k, w_stride):
 *   acc[j] += sum_i a[i] * W(w_at + j * w_stride + i), j < N, i < k
 * tvmq_dot_s4_2xN(acc, a, w, w_at, k, w_stride, a_stride, acc_stride): the same for
 *   two input runs a_stride bytes apart, into acc[j] and acc[acc_stride + j].
 * tvmq_dw_s4x4(acc, x, w, w_at, kh, kw, x_row, x_col, w_row, w_col): a depthwise
 *   window for four channels (x strides in bytes, w strides in elements).
 *
 * The weights are unpacked in registers, never into a buffer. On the DSP extension
 * (Cortex-M4/M7/M33/M55) one 32-bit load holds eight weights: masking its low and
 * high nibbles into the high half of each byte gives 16 x weight in every byte, which
 * SXTB16 (and SXTB16 ROR #8) widen to int16 pairs for SMLAD directly; the sums are
 * 16 x the true sums, shifted back exactly at the end. The activations are paired to
 * match once per call (PKHBT/PKHTB) and reused for the N channels. Elsewhere, and for
 * odd element positions, plain C extracts each nibble with two shifts. Integer sums
 * are exact, so every path gives the same result.
 */
#ifndef TVMQ_S4_H
#define TVMQ_S4_H

#include <stdint.h>
#include <string.h>

/* Weight element e of a packed tensor, sign-extended. */
static inline int32_t tvmq_s4_at(const uint8_t *w, int32_t e) {
  uint8_t byte = w[e >> 1];
  return (int32_t)(int8_t)((e & 1) ? byte : (uint8_t)(byte << 4)) >> 4;
}

/* Plain C: any machine, any (odd) position. */
static inline void tvmq_s4_dot_plain(int32_t *acc, const int8_t *a, const uint8_t *w,
                                     int32_t w_at, int32_t k, int32_t w_stride, int32_t n) {
  for (int32_t j = 0; j < n; ++j) {
    int32_t sum = acc[j], e = w_at + j * w_stride;
    for (int32_t i = 0; i < k; ++i) sum += (int32_t)a[i] * tvmq_s4_at(w, e + i);
    acc[j] = sum;
  }
}

static inline void tvmq_s4_dw_plain(int32_t *acc, const int8_t *x, const uint8_t *w, int32_t w_at,
                                    int32_t kh, int32_t kw, int32_t x_row, int32_t x_col,
                                    int32_t w_row, int32_t w_col) {
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c)
      for (int j = 0; j < 4; ++j)
        acc[j] += (int32_t)x[r * x_row + c * x_col + j] *
                  tvmq_s4_at(w, w_at + r * w_row + c * w_col + j);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__aarch64__)
#include <arm_acle.h>

static inline int32_t tvmq_s4_load32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4); /* one (unaligned) LDR */
  return v;
}

static inline int16x2_t tvmq_s4_sxtb16_ror8(int32_t x) {
  int16x2_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

/* (low half of b, low half of t) and (high half of b, high half of t): PKHBT and
   PKHTB (ACLE has no intrinsic for them, and gcc builds them from masks and shifts). */
static inline int32_t tvmq_s4_pkhbt(int32_t b, int32_t t) {
  int32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(b), "r"(t));
  return r;
}
static inline int32_t tvmq_s4_pkhtb(int32_t t, int32_t b) {
  int32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(t), "r"(b));
  return r;
}

/* Eight activations a[0..7] as the int16 pairs that meet the weights' nibble pairs:
   p[0] = (a0, a4), p[1] = (a1, a5), p[2] = (a2, a6), p[3] = (a3, a7). Bytes (a0, a1, a4,
   a5) and (a2, a3, a6, a7) are packed first, then widened as the int8 kernel does. */
static inline void tvmq_s4_pair_a(const int8_t *a, int32_t p[4]) {
  int32_t lo = tvmq_s4_load32(a), hi = tvmq_s4_load32(a + 4);
  int32_t outer = tvmq_s4_pkhbt(lo, hi), inner = tvmq_s4_pkhtb(hi, lo);
  p[0] = __sxtb16(outer);
  p[1] = tvmq_s4_sxtb16_ror8(outer);
  p[2] = __sxtb16(inner);
  p[3] = tvmq_s4_sxtb16_ror8(inner);
}

/* 16 x the dot product of eight packed weights (one word) with pairs p. Bytes of
   `low` hold 16 x W(0, 2, 4, 6), of `high` 16 x W(1, 3, 5, 7). */
static inline int32_t tvmq_s4_mac8(int32_t word, const int32_t p[4], int32_t sum) {
  int32_t low = (int32_t)(((uint32_t)word << 4) & 0xF0F0F0F0u);
  int32_t high = (int32_t)((uint32_t)word & 0xF0F0F0F0u);
  sum = __smlad(p[0], __sxtb16(low), sum);
  sum = __smlad(p[2], tvmq_s4_sxtb16_ror8(low), sum);
  sum = __smlad(p[1], __sxtb16(high), sum);
  return __smlad(p[3], tvmq_s4_sxtb16_ror8(high), sum);
}

#define TVMQ_S4_DOT_DEFINE(N)                                                            \
  static inline int32_t tvmq_dot_s4_1x##N(void *acc_, void *a_, void *w_, int32_t w_at,    \
                                          int32_t k, int32_t w_stride) {                 \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a = a_;                                                                \
    const uint8_t *w = w_;                                                               \
    if ((w_at | w_stride) & 1) {                                                         \
      tvmq_s4_dot_plain(acc, a, w, w_at, k, w_stride, N);                                \
      return 0;                                                                          \
    }                                                                                    \
    const uint8_t *row = w + (w_at >> 1);                                                \
    int32_t sum[N];                                                                      \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) sum[j] = 0;                     \
    int32_t i = 0;                                                                       \
    for (; i + 8 <= k; i += 8, row += 4) {                                               \
      int32_t p[4];                                                                      \
      tvmq_s4_pair_a(a + i, p);                                                          \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j)                               \
        sum[j] = tvmq_s4_mac8(tvmq_s4_load32(row + j * (w_stride >> 1)), p, sum[j]);     \
    }                                                                                    \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] += sum[j] >> 4;          \
    if (i < k) tvmq_s4_dot_plain(acc, a + i, w, w_at + i, k - i, w_stride, N);           \
    return 0;                                                                            \
  }

#define TVMQ_S4_DOT2_DEFINE(N)                                                           \
  static inline int32_t tvmq_dot_s4_2x##N(void *acc_, void *a_, void *w_, int32_t w_at,    \
                                          int32_t k, int32_t w_stride, int32_t a_stride, \
                                          int32_t acc_stride) {                          \
    int32_t *acc = acc_;                                                                 \
    const int8_t *a0 = a_, *a1 = (const int8_t *)a_ + a_stride;                          \
    const uint8_t *w = w_;                                                               \
    if ((w_at | w_stride) & 1) {                                                         \
      tvmq_s4_dot_plain(acc, a0, w, w_at, k, w_stride, N);                               \
      tvmq_s4_dot_plain(acc + acc_stride, a1, w, w_at, k, w_stride, N);                  \
      return 0;                                                                          \
    }                                                                                    \
    const uint8_t *row = w + (w_at >> 1);                                                \
    int32_t s0[N], s1[N];                                                                \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) s0[j] = 0, s1[j] = 0;           \
    int32_t i = 0;                                                                       \
    for (; i + 8 <= k; i += 8, row += 4) {                                               \
      int32_t p0[4], p1[4];                                                              \
      tvmq_s4_pair_a(a0 + i, p0);                                                        \
      tvmq_s4_pair_a(a1 + i, p1);                                                        \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                             \
        int32_t word = tvmq_s4_load32(row + j * (w_stride >> 1));                        \
        s0[j] = tvmq_s4_mac8(word, p0, s0[j]);                                           \
        s1[j] = tvmq_s4_mac8(word, p1, s1[j]);                                           \
      }                                                                                  \
    }                                                                                    \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                               \
      acc[j] += s0[j] >> 4;                                                              \
      acc[acc_stride + j] += s1[j] >> 4;                                                 \
    }                                                                                    \
    if (i < k) {                                                                         \
      tvmq_s4_dot_plain(acc, a0 + i, w, w_at + i, k - i, w_stride, N);                   \
      tvmq_s4_dot_plain(acc + acc_stride, a1 + i, w, w_at + i, k - i, w_stride, N);      \
    }                                                                                    \
    return 0;                                                                            \
  }

/* Four channels' weights (one halfword, four nibbles) as 16 x (W0, W2) and 16 x (W1, W3),
   the lanes SXTB16 makes of the activations. */
static inline int32_t tvmq_dw_s4x4(void *acc_, void *x_, void *w_, int32_t w_at, int32_t kh,
                                   int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                                   int32_t w_col) {
  int32_t *acc = acc_;
  const int8_t *x = x_;
  const uint8_t *w = w_;
  if ((w_at | w_row | w_col) & 1) {
    tvmq_s4_dw_plain(acc, x, w, w_at, kh, kw, x_row, x_col, w_row, w_col);
    return 0;
  }
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c) {
      const uint8_t *q = w + ((w_at + r * w_row + c * w_col) >> 1);
      uint32_t spread = (uint32_t)q[0] | ((uint32_t)q[1] << 16);
      int32_t low = __sxtb16((int32_t)((spread << 4) & 0xF0F0F0F0u));
      int32_t high = __sxtb16((int32_t)(spread & 0xF0F0F0F0u));
      int32_t vx = tvmq_s4_load32(x + r * x_row + c * x_col);
      int32_t x_even = __sxtb16(vx), x_odd = tvmq_s4_sxtb16_ror8(vx);
      s0 = __smlabb(x_even, low, s0);
      s2 = __smlatt(x_even, low, s2);
      s1 = __smlabb(x_odd, high, s1);
      s3 = __smlatt(x_odd, high, s3);
    }
  acc[0] += s0 >> 4, acc[1] += s1 >> 4, acc[2] += s2 >> 4, acc[3] += s3 >> 4;
  return 0;
}

#define TVMQ_S4_PATH "dsp"

#else /* plain C */

#define TVMQ_S4_DOT_DEFINE(N)                                                            \
  static inline int32_t tvmq_dot_s4_1x##N(void *acc, void *a, void *w, int32_t w_at,       \
                                          int32_t k, int32_t w_stride) {                 \
    tvmq_s4_dot_plain(acc, a, w, w_at, k, w_stride, N);                                  \
    return 0;                                                                            \
  }

#define TVMQ_S4_DOT2_DEFINE(N)                                                           \
  static inline int32_t tvmq_dot_s4_2x##N(void *acc, void *a, void *w, int32_t w_at,       \
                                          int32_t k, int32_t w_stride, int32_t a_stride, \
                                          int32_t acc_stride) {                          \
    tvmq_s4_dot_plain(acc, a, w, w_at, k, w_stride, N);                                  \
    tvmq_s4_dot_plain((int32_t *)acc + acc_stride, (const int8_t *)a + a_stride, w, w_at, k, \
                      w_stride, N);                                                      \
    return 0;                                                                            \
  }

static inline int32_t tvmq_dw_s4x4(void *acc, void *x, void *w, int32_t w_at, int32_t kh,
                                   int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                                   int32_t w_col) {
  tvmq_s4_dw_plain(acc, x, w, w_at, kh, kw, x_row, x_col, w_row, w_col);
  return 0;
}

#define TVMQ_S4_PATH "plain"

#endif

TVMQ_S4_DOT_DEFINE(1)
TVMQ_S4_DOT_DEFINE(2)
TVMQ_S4_DOT_DEFINE(4)
TVMQ_S4_DOT2_DEFINE(1)
TVMQ_S4_DOT2_DEFINE(2)
TVMQ_S4_DOT2_DEFINE(4)

/* The int4 forms of tvmq_dot.h's rows (tvmq_dot_s8_rowxN, tvmq_dw_s8x4_row): the same
   arguments with the weights' element position w_at after the pointer. */
#define TVMQ_S4_ROW_DEFINE(N)                                                            \
  static inline int32_t tvmq_dot_s4_rowx##N(void *acc_, void *a_, void *w, int32_t w_at,   \
                                            int32_t k, int32_t w_stride, int32_t a_stride, \
                                            int32_t acc_stride, int32_t count) {           \
    int32_t *acc = acc_;                                                                   \
    int8_t *a = a_;                                                                        \
    int32_t p = 0;                                                                         \
    for (; p + 2 <= count; p += 2)                                                         \
      tvmq_dot_s4_2x##N(acc + p * acc_stride, a + p * a_stride, w, w_at, k, w_stride,      \
                        a_stride, acc_stride);                                             \
    if (p < count)                                                                         \
      tvmq_dot_s4_1x##N(acc + p * acc_stride, a + p * a_stride, w, w_at, k, w_stride);     \
    return 0;                                                                              \
  }
TVMQ_S4_ROW_DEFINE(1)
TVMQ_S4_ROW_DEFINE(2)
TVMQ_S4_ROW_DEFINE(4)

static inline int32_t tvmq_dw_s4x4_row(void *acc_, void *x_, void *w, int32_t w_at, int32_t kh,
                                       int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                                       int32_t w_col, int32_t count, int32_t x_pixel,
                                       int32_t acc_pixel) {
  int32_t *acc = acc_;
  int8_t *x = x_;
  for (int32_t p = 0; p < count; ++p)
    tvmq_dw_s4x4(acc + p * acc_pixel, x + p * x_pixel, w, w_at, kh, kw, x_row, x_col, w_row,
                 w_col);
  return 0;
}

#include "tvmq_cb.h" /* the codebook (lookup) forms (tvmq.backend.codebook) */

#endif /* TVMQ_S4_H */
