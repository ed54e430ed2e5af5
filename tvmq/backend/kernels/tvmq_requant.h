/* int8 requantization micro-kernels called by tvmq's tensorized epilogues.
 *
 * tvmq_requant_s8xN(out, acc, bias, mult, shift, zp, lo, hi), for j < N:
 *   out[j] = clamp(MultiplyByQuantizedMultiplier(acc[j] + bias[j], mult[j], -shift[j]) + zp,
 *                  lo, hi)
 * with TFLite's rounding (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT
 * with halves away from zero) and every right shift at least one, which is the only
 * case tvmq hands to these kernels (tvmq.quantize.fixed_point.requantize_te).
 * Helium (Cortex-M55) does four channels in a handful of vector instructions with
 * CMSIS-NN's exact recipe; elsewhere one 32x32->64 multiply per channel.
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

/* VQRDMULH is SaturatingRoundingDoublingHighMul (multipliers are never INT32_MIN); the
   fix-up of one before VRSHL turns its round-half-up into TFLite's half-away-from-zero. */
static inline int32_t tvmq_requant_s8x4(void *out, void *acc, void *bias, void *mult,
                                        void *shift, int32_t zp, int32_t lo, int32_t hi) {
  int32x4_t x = vaddq_s32(vldrwq_s32(acc), vldrwq_s32(bias));
  int32x4_t right = vnegq_s32(vldrwq_s32(shift));
  int32x4_t y = vqrdmulhq_s32(x, vldrwq_s32(mult));
  int32x4_t fixup = vshrq_n_s32(vandq_s32(y, right), 31);
  y = vrshlq_s32(vqaddq_s32(y, fixup), right);
  y = vmaxq_s32(vminq_s32(vaddq_n_s32(y, zp), vdupq_n_s32(hi)), vdupq_n_s32(lo));
  vstrbq_s32(out, y);
  return 0;
}
#else
TVMQ_REQUANT_DEFINE(4)
#endif

TVMQ_REQUANT_DEFINE(2)
TVMQ_REQUANT_DEFINE(1)

#endif /* TVMQ_REQUANT_H */
