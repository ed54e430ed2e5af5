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

/* ((x * m + 2^30 + 2^(30 + r) - (x < 0) 2^31) >> 32) >> (r - 1), both TFLite roundings
   folded into one nudge, exact for every int32 x (tests/test_fixed_point.py). For r >= 2
   the 2^(30 + r) is a whole multiple of 2^32 and moves after the high word as 2^(r - 2),
   so one SMLAL with a small nudge does the 64-bit part. */
static inline int32_t tvmq_requant_lane(int32_t x, int32_t m, int32_t r, int32_t zp,
                                        int32_t lo, int32_t hi) {
  int64_t nudge = x < 0 ? -((int64_t)1 << 30) : (int64_t)1 << 30;
  if (r == 1) nudge += (int64_t)1 << 31;
  int32_t high = (int32_t)((nudge + (int64_t)x * m) >> 32);
  int32_t y = ((high + (int32_t)((1u << r) >> 2)) >> (r - 1)) + zp;
  return y < lo ? lo : (y > hi ? hi : y);
}

#define TVMQ_REQUANT_DEFINE(N)                                                          \
  static inline int32_t tvmq_requant_s8x##N(void *out_, void *acc_, void *bias_,        \
                                            void *mult_, void *shift_, int32_t zp,      \
                                            int32_t lo, int32_t hi) {                   \
    int8_t *out = out_;                                                                 \
    const int32_t *acc = acc_, *bias = bias_, *mult = mult_, *shift = shift_;           \
    for (int j = 0; j < N; ++j)                                                         \
      out[j] = (int8_t)tvmq_requant_lane(acc[j] + bias[j], mult[j], shift[j], zp, lo, hi); \
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
   acc_stride elements apart). Each channel's parameters, and tvmq_requant_lane's
   constants derived from them, are loaded once for the row. */
#if defined(TVMQ_REQUANT_VECTOR)
#define TVMQ_REQUANT_ROW_DEFINE(N)                                                      \
  static inline int32_t tvmq_requant_s8x##N##_row(                                      \
      void *out, void *acc, void *bias, void *mult, void *shift, int32_t zp, int32_t lo,  \
      int32_t hi, int32_t count, int32_t out_stride, int32_t acc_stride) {              \
    for (int32_t p = 0; p < count; ++p)                                                 \
      tvmq_requant_s8x##N((int8_t *)out + p * out_stride, (int32_t *)acc + p * acc_stride, \
                          bias, mult, shift, zp, lo, hi);                               \
    return 0;                                                                           \
  }
#else
#define TVMQ_REQUANT_ROW_DEFINE(N)                                                      \
  static inline int32_t tvmq_requant_s8x##N##_row(                                      \
      void *out_, void *acc_, void *bias_, void *mult_, void *shift_, int32_t zp,       \
      int32_t lo, int32_t hi, int32_t count, int32_t out_stride, int32_t acc_stride) {  \
    int8_t *out = out_;                                                                 \
    const int32_t *acc = acc_, *bias = bias_, *mult = mult_, *shift = shift_;           \
    for (int j = 0; j < N; ++j) {                                                       \
      int32_t b = bias[j], m = mult[j], r = shift[j];                                   \
      int32_t round = (int32_t)((1u << r) >> 2), right = r - 1;                         \
      int64_t up = ((int64_t)1 << 30) + (r == 1 ? (int64_t)1 << 31 : 0);               \
      int64_t down = up - ((int64_t)1 << 31);                                           \
      for (int32_t p = 0; p < count; ++p) {                                             \
        int32_t x = acc[p * acc_stride + j] + b;                                        \
        int32_t high = (int32_t)(((x < 0 ? down : up) + (int64_t)x * m) >> 32);         \
        int32_t y = ((high + round) >> right) + zp;                                     \
        out[p * out_stride + j] = (int8_t)(y < lo ? lo : (y > hi ? hi : y));            \
      }                                                                                 \
    }                                                                                   \
    return 0;                                                                           \
  }
#endif
TVMQ_REQUANT_ROW_DEFINE(4)
TVMQ_REQUANT_ROW_DEFINE(2)
TVMQ_REQUANT_ROW_DEFINE(1)

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
