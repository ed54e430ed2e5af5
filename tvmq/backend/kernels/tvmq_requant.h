/* int8 requantization micro-kernels called by tvmq's tensorized epilogues.
 *
 * tvmq_requant_s8xN(out, acc, bias, mult, shift, zp, lo, hi), for j < N:
 *   out[j] = clamp(MultiplyByQuantizedMultiplier(acc[j] + bias[j], mult[j], -shift[j]) + zp,
 *                  lo, hi)
 * with TFLite's rounding (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT
 * with halves away from zero) and every right shift at least one, which is the only
 * case tvmq hands to these kernels (tvmq.quantize.fixed_point.requantize_te).
 * Helium (Cortex-M55) and NEON (Cortex-A) do four channels in a handful of vector
 * instructions with CMSIS-NN's exact recipe; elsewhere one 32x32->64 multiply per
 * channel.
 */
#ifndef TVMQ_REQUANT_H
#define TVMQ_REQUANT_H

#include <stdint.h>
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h> /* __ssat */
#endif

/* ((x * m + 2^30 + 2^(30 + r) - (x < 0) 2^31) >> 32) >> (r - 1), both TFLite roundings
   folded into one 64-bit nudge, exact for every int32 x (tests/test_fixed_point.py):
   one SMLAL into the nudge, whose sign correction is a shifted subtract. */
static inline int64_t tvmq_requant_nudge(int32_t r) {
  return ((int64_t)1 << 30) + ((int64_t)1 << (30 + r));
}

static inline int32_t tvmq_requant_scaled(int32_t x, int32_t m, int64_t nudge, int32_t right) {
  nudge -= (int64_t)((uint32_t)x >> 31) << 31;
  return (int32_t)((nudge + (int64_t)x * m) >> 32) >> right;
}

static inline int32_t tvmq_clamp(int32_t y, int32_t lo, int32_t hi) {
  return y < lo ? lo : (y > hi ? hi : y);
}

static inline int32_t tvmq_requant_lane(int32_t x, int32_t m, int32_t r, int32_t zp,
                                        int32_t lo, int32_t hi) {
  return tvmq_clamp(tvmq_requant_scaled(x, m, tvmq_requant_nudge(r), r - 1) + zp, lo, hi);
}

/* One channel (bias b, multiplier m, right shift r) of `count` pixels, `acc_stride` and
   `out_stride` elements apart; its constants derived once. `full` (the whole int8
   range, no activation clamp) saturates in one SSAT where the core has it. */
static inline void tvmq_requant_channel(int8_t *out, const int32_t *acc, int32_t b, int32_t m,
                                        int32_t r, int32_t zp, int32_t lo, int32_t hi,
                                        int32_t count, int32_t out_stride,
                                        int32_t acc_stride, int full) {
  int64_t nudge = tvmq_requant_nudge(r);
  int32_t right = r - 1;
  for (int32_t p = 0; p < count; ++p) {
    int32_t y = tvmq_requant_scaled(acc[p * acc_stride] + b, m, nudge, right) + zp;
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    out[p * out_stride] = (int8_t)(full ? __ssat(y, 8) : tvmq_clamp(y, lo, hi));
#else
    (void)full;
    out[p * out_stride] = (int8_t)tvmq_clamp(y, lo, hi);
#endif
  }
}

/* tvmq_requant_channel for `lanes` channels, the full-range case apart. */
static inline void tvmq_requant_pixels(int8_t *out, const int32_t *acc, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift, int32_t zp,
                                       int32_t lo, int32_t hi, int32_t lanes, int32_t count,
                                       int32_t out_stride, int32_t acc_stride) {
  if (lo == -128 && hi == 127)
    for (int32_t j = 0; j < lanes; ++j)
      tvmq_requant_channel(out + j, acc + j, bias[j], mult[j], shift[j], zp, lo, hi, count,
                           out_stride, acc_stride, 1);
  else
    for (int32_t j = 0; j < lanes; ++j)
      tvmq_requant_channel(out + j, acc + j, bias[j], mult[j], shift[j], zp, lo, hi, count,
                           out_stride, acc_stride, 0);
}

#define TVMQ_REQUANT_DEFINE(N)                                                          \
  static inline int32_t tvmq_requant_s8x##N(void *out, void *acc, void *bias, void *mult, \
                                            void *shift, int32_t zp, int32_t lo,        \
                                            int32_t hi) {                               \
    tvmq_requant_pixels(out, acc, bias, mult, shift, zp, lo, hi, N, 1, 0, 0);           \
    return 0;                                                                           \
  }

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define TVMQ_REQUANT_VECTOR
#define TVMQ_ADD_SCALAR_S32X4(v, x) vaddq_n_s32(v, x) /* one VADD with a core register */
#elif defined(__ARM_NEON) /* Cortex-A */
#include <arm_neon.h>
#include <string.h>
#define TVMQ_REQUANT_VECTOR
#define TVMQ_ADD_SCALAR_S32X4(v, x) vaddq_s32(v, vdupq_n_s32(x))
#endif

#ifdef TVMQ_REQUANT_VECTOR /* Helium and NEON share the recipe; only the store differs */
/* y rounded right by -right (right <= 0, per lane): VRSHL rounds halves up; the fix-up of
   one for negative y turns that into TFLite's half away from zero. */
static inline int32x4_t tvmq_round_right_s32x4(int32x4_t y, int32x4_t right) {
  return vrshlq_s32(vqaddq_s32(y, vshrq_n_s32(vandq_s32(y, right), 31)), right);
}

/* Four channels, clamped, still int32. VQRDMULH is SaturatingRoundingDoublingHighMul
   (multipliers are never INT32_MIN). */
static inline int32x4_t tvmq_requant_s32x4(void *acc, void *bias, void *mult, void *shift,
                                           int32_t zp, int32_t lo, int32_t hi) {
  int32x4_t x = vaddq_s32(vld1q_s32(acc), vld1q_s32(bias));
  int32x4_t y = tvmq_round_right_s32x4(vqrdmulhq_s32(x, vld1q_s32(mult)),
                                       vnegq_s32(vld1q_s32(shift)));
  return vmaxq_s32(vminq_s32(TVMQ_ADD_SCALAR_S32X4(y, zp), vdupq_n_s32(hi)), vdupq_n_s32(lo));
}
#endif

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
static inline int32_t tvmq_requant_s8x4(void *out, void *acc, void *bias, void *mult,
                                        void *shift, int32_t zp, int32_t lo, int32_t hi) {
  vstrbq_s32(out, tvmq_requant_s32x4(acc, bias, mult, shift, zp, lo, hi));
  return 0;
}
#elif defined(__ARM_NEON)
static inline int32_t tvmq_requant_s8x4(void *out, void *acc, void *bias, void *mult,
                                        void *shift, int32_t zp, int32_t lo, int32_t hi) {
  int16x4_t narrow = vmovn_s32(tvmq_requant_s32x4(acc, bias, mult, shift, zp, lo, hi));
  int8_t bytes[8];
  vst1_s8(bytes, vmovn_s16(vcombine_s16(narrow, narrow)));
  memcpy(out, bytes, 4);
  return 0;
}
#else
TVMQ_REQUANT_DEFINE(4)
#endif

TVMQ_REQUANT_DEFINE(2)
TVMQ_REQUANT_DEFINE(1)

/* tvmq_requant_s8xN_row(out, acc, bias, mult, shift, zp, lo, hi, count, out_stride,
   acc_stride): the same for a row of count pixels (their channels out_stride and
   acc_stride elements apart). Each channel's parameters, and the constants derived
   from them, are loaded once for the row. */
#define TVMQ_REQUANT_ROW_DEFINE(N)                                                      \
  static inline int32_t tvmq_requant_s8x##N##_row(                                      \
      void *out, void *acc, void *bias, void *mult, void *shift, int32_t zp, int32_t lo,  \
      int32_t hi, int32_t count, int32_t out_stride, int32_t acc_stride) {              \
    tvmq_requant_pixels(out, acc, bias, mult, shift, zp, lo, hi, N, count, out_stride,  \
                        acc_stride);                                                    \
    return 0;                                                                           \
  }

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
static inline int32_t tvmq_requant_s8x4_row(void *out, void *acc, void *bias, void *mult,
                                            void *shift, int32_t zp, int32_t lo, int32_t hi,
                                            int32_t count, int32_t out_stride,
                                            int32_t acc_stride) {
  int32x4_t b = vld1q_s32(bias), m = vld1q_s32(mult), right = vnegq_s32(vld1q_s32(shift));
  int32x4_t low = vdupq_n_s32(lo), high = vdupq_n_s32(hi);
  for (int32_t p = 0; p < count; ++p) {
    int32x4_t x = vaddq_s32(vld1q_s32((int32_t *)acc + p * acc_stride), b);
    int32x4_t y = vaddq_n_s32(tvmq_round_right_s32x4(vqrdmulhq_s32(x, m), right), zp);
    vstrbq_s32((int8_t *)out + p * out_stride, vmaxq_s32(vminq_s32(y, high), low));
  }
  return 0;
}
#elif defined(__ARM_NEON)
static inline int32_t tvmq_requant_s8x4_row(void *out, void *acc, void *bias, void *mult,
                                            void *shift, int32_t zp, int32_t lo, int32_t hi,
                                            int32_t count, int32_t out_stride,
                                            int32_t acc_stride) {
  for (int32_t p = 0; p < count; ++p)
    tvmq_requant_s8x4((int8_t *)out + p * out_stride, (int32_t *)acc + p * acc_stride, bias,
                      mult, shift, zp, lo, hi);
  return 0;
}
#else
TVMQ_REQUANT_ROW_DEFINE(4)
#endif
TVMQ_REQUANT_ROW_DEFINE(2)
TVMQ_REQUANT_ROW_DEFINE(1)

/* tvmq_rescale_s8xN(out, acc, bias, mult, shift, zp, lo, hi) and its rows
   (tvmq_rescale_s8xN_row, same arguments as tvmq_requant_s8xN_row): the same with
   TFLite's shift of any sign (left when positive: the multiplier at least one half),
   tvmq.quantize.fixed_point.rescale_te:
     out[j] = clamp(MultiplyByQuantizedMultiplier(acc[j] + bias[j], mult[j], shift[j]) + zp,
                    lo, hi)
   with the sum shifted left (wrapping, as int32 arithmetic does) by max(shift, 0) before
   the doubling high multiply, rounded right by max(-shift, 0) after it. A channel with
   a right shift takes tvmq_requant_channel's folded rounding; without one the doubling
   high multiply is the whole rescale: (x m + 2^30) >> 31, either sign. */
static inline void tvmq_rescale_channel(int8_t *out, const int32_t *acc, int32_t b, int32_t m,
                                        int32_t e, int32_t zp, int32_t lo, int32_t hi,
                                        int32_t count, int32_t out_stride, int32_t acc_stride,
                                        int full) {
  if (e < 0) {
    tvmq_requant_channel(out, acc, b, m, -e, zp, lo, hi, count, out_stride, acc_stride, full);
    return;
  }
  for (int32_t p = 0; p < count; ++p) {
    int32_t x = (int32_t)((uint32_t)(acc[p * acc_stride] + b) << e);
    int32_t y = (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31) + zp;
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    out[p * out_stride] = (int8_t)(full ? __ssat(y, 8) : tvmq_clamp(y, lo, hi));
#else
    (void)full;
    out[p * out_stride] = (int8_t)tvmq_clamp(y, lo, hi);
#endif
  }
}

static inline void tvmq_rescale_pixels(int8_t *out, const int32_t *acc, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift, int32_t zp,
                                       int32_t lo, int32_t hi, int32_t lanes, int32_t count,
                                       int32_t out_stride, int32_t acc_stride) {
  int full = lo == -128 && hi == 127;
  for (int32_t j = 0; j < lanes; ++j)
    tvmq_rescale_channel(out + j, acc + j, bias[j], mult[j], shift[j], zp, lo, hi, count,
                         out_stride, acc_stride, full);
}

#define TVMQ_RESCALE_DEFINE(N)                                                          \
  static inline int32_t tvmq_rescale_s8x##N(void *out, void *acc, void *bias, void *mult, \
                                            void *shift, int32_t zp, int32_t lo,        \
                                            int32_t hi) {                               \
    tvmq_rescale_pixels(out, acc, bias, mult, shift, zp, lo, hi, N, 1, 0, 0);           \
    return 0;                                                                           \
  }                                                                                     \
  static inline int32_t tvmq_rescale_s8x##N##_row(                                      \
      void *out, void *acc, void *bias, void *mult, void *shift, int32_t zp, int32_t lo,  \
      int32_t hi, int32_t count, int32_t out_stride, int32_t acc_stride) {              \
    tvmq_rescale_pixels(out, acc, bias, mult, shift, zp, lo, hi, N, count, out_stride,  \
                        acc_stride);                                                    \
    return 0;                                                                           \
  }

#ifdef TVMQ_REQUANT_VECTOR
/* Four channels of a row: VSHL left by max(shift, 0), VQRDMULH, the rounding right
   shift by max(-shift, 0) (none: the fix-up and VRSHL by zero leave y as it is). */
static inline int32_t tvmq_rescale_s8x4_row(void *out, void *acc, void *bias, void *mult,
                                            void *shift, int32_t zp, int32_t lo, int32_t hi,
                                            int32_t count, int32_t out_stride,
                                            int32_t acc_stride) {
  int32x4_t b = vld1q_s32(bias), m = vld1q_s32(mult), e = vld1q_s32(shift);
  int32x4_t zero = vdupq_n_s32(0), left = vmaxq_s32(e, zero), right = vminq_s32(e, zero);
  int32x4_t low = vdupq_n_s32(lo), high = vdupq_n_s32(hi);
  for (int32_t p = 0; p < count; ++p) {
    int32x4_t x = vshlq_s32(vaddq_s32(vld1q_s32((int32_t *)acc + p * acc_stride), b), left);
    int32x4_t y = TVMQ_ADD_SCALAR_S32X4(tvmq_round_right_s32x4(vqrdmulhq_s32(x, m), right), zp);
    y = vmaxq_s32(vminq_s32(y, high), low);
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
    vstrbq_s32((int8_t *)out + p * out_stride, y);
#else
    int16x4_t narrow = vmovn_s32(y);
    int8_t bytes[8];
    vst1_s8(bytes, vmovn_s16(vcombine_s16(narrow, narrow)));
    memcpy((int8_t *)out + p * out_stride, bytes, 4);
#endif
  }
  return 0;
}

static inline int32_t tvmq_rescale_s8x4(void *out, void *acc, void *bias, void *mult,
                                        void *shift, int32_t zp, int32_t lo, int32_t hi) {
  return tvmq_rescale_s8x4_row(out, acc, bias, mult, shift, zp, lo, hi, 1, 0, 0);
}
#else
TVMQ_RESCALE_DEFINE(4)
#endif
TVMQ_RESCALE_DEFINE(2)
TVMQ_RESCALE_DEFINE(1)

/* TFLite's int8 elementwise add (AddElementwise), tvmq_add_s8(out, a, b, n, zp_a, m_a,
   r_a, zp_b, m_b, r_b, m_out, r_out, zp_out, lo, hi): each input centred, shifted left by
   20 and rescaled by MultiplyByQuantizedMultiplier(., m, -r), the sum rescaled to the
   output, clamped. Every r >= 0 (tvmq.quantize.fixed_point.add_te), and every rescaled
   value below 2^29 in magnitude (int8 centred and shifted by 20). Helium: four lanes
   per step with the VQRDMULH recipe above; elsewhere per element, with
   SaturatingRoundingDoublingHighMul as (x m + 2^30) >> 31, which equals it for either sign,
   and RoundingDivideByPOT as (h + 2^(r-1) - (h < 0)) >> r. */
#define TVMQ_ADD_LEFT_SHIFT 20

static inline int32_t tvmq_rescale_lane(int32_t x, int32_t m, int32_t r) {
  int32_t high = (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31);
  return r == 0 ? high : (high + (1 << (r - 1)) - (high < 0)) >> r;
}

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
static inline int32x4_t tvmq_rescale_s32x4(int32x4_t x, int32_t m, int32x4_t right) {
  return tvmq_round_right_s32x4(vqrdmulhq_n_s32(x, m), right);
}

static inline int32_t tvmq_add_s8(void *out_, void *a_, void *b_, int32_t n, int32_t zp_a,
                                  int32_t m_a, int32_t r_a, int32_t zp_b, int32_t m_b,
                                  int32_t r_b, int32_t m_out, int32_t r_out, int32_t zp_out,
                                  int32_t lo, int32_t hi) {
  int8_t *out = out_;
  const int8_t *a = a_, *b = b_;
  int32x4_t right_a = vdupq_n_s32(-r_a), right_b = vdupq_n_s32(-r_b);
  int32x4_t right_out = vdupq_n_s32(-r_out);
  int32x4_t low = vdupq_n_s32(lo), high = vdupq_n_s32(hi);
  for (int32_t i = 0; i < n; i += 4) {
    mve_pred16_t p = vctp32q((uint32_t)(n - i));
    int32x4_t va = vshlq_n_s32(vsubq_n_s32(vldrbq_z_s32(a + i, p), zp_a), TVMQ_ADD_LEFT_SHIFT);
    int32x4_t vb = vshlq_n_s32(vsubq_n_s32(vldrbq_z_s32(b + i, p), zp_b), TVMQ_ADD_LEFT_SHIFT);
    int32x4_t sum = vaddq_s32(tvmq_rescale_s32x4(va, m_a, right_a),
                              tvmq_rescale_s32x4(vb, m_b, right_b));
    int32x4_t y = vaddq_n_s32(tvmq_rescale_s32x4(sum, m_out, right_out), zp_out);
    vstrbq_p_s32(out + i, vmaxq_s32(vminq_s32(y, high), low), p);
  }
  return 0;
}
#else
static inline int32_t tvmq_add_s8(void *out_, void *a_, void *b_, int32_t n, int32_t zp_a,
                                  int32_t m_a, int32_t r_a, int32_t zp_b, int32_t m_b,
                                  int32_t r_b, int32_t m_out, int32_t r_out, int32_t zp_out,
                                  int32_t lo, int32_t hi) {
  int8_t *out = out_;
  const int8_t *a = a_, *b = b_;
  for (int32_t i = 0; i < n; ++i) {
    int32_t sum = tvmq_rescale_lane((a[i] - zp_a) * (1 << TVMQ_ADD_LEFT_SHIFT), m_a, r_a) +
                  tvmq_rescale_lane((b[i] - zp_b) * (1 << TVMQ_ADD_LEFT_SHIFT), m_b, r_b);
    int32_t y = tvmq_rescale_lane(sum, m_out, r_out) + zp_out;
    out[i] = (int8_t)(y < lo ? lo : (y > hi ? hi : y));
  }
  return 0;
}
#endif

#endif /* TVMQ_REQUANT_H */
