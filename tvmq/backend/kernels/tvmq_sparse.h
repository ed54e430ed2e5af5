/* Sparse int8 weights, stored without their zeros, for dense layers and 1x1 convolutions.
 *
 * tvmq_sparse_s8(out, x, packed, bias, mult, shift, elements, zp, lo, hi): for each of
 * the elements / channels rows of x (depth int8 each, NHWC pixels or dense rows) and
 * each output channel c,
 *   out[row, c] = requant(sum over c's nonzero weights w at input index i of x[row, i] * w)
 * with tvmq_requant.h's rounding (bit-exact with the dense kernels). `packed`
 * (tvmq.backend.sparse.pack_weights): uint32 depth, uint32 channels, uint16 entries per
 * channel (a multiple of 8; padded to 4 bytes), then per channel its entries, 2 bytes
 * each: the distance from the previous entry's input index (uint8; the first from
 * index 0) and the weight (int8). Gaps over 255 take extra entries of weight 0, and each
 * channel is padded to 8 entries with (0, 0). Eight entries per iteration: one 32-bit
 * load holds two; on DSP cores SXTB16 widens both weights at once and SMLAD multiplies
 * both pairs in one instruction. Rows go in pairs (pixels of a 1x1 convolution), each
 * entry decoded once for both.
 */
#ifndef TVMQ_SPARSE_H
#define TVMQ_SPARSE_H

#include <stdint.h>

#include "tvmq_requant.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__)
/* Two entries of one word e = (d0, w0, d1, w1): p advanced by d0 then d1 with UXTAB, the
   two inputs packed with PKHBT, both weights widened by one SXTB16, one SMLAD. */
#define TVMQ_SPARSE_PAIR(acc_, p_, e_)                                                  \
  do {                                                                                  \
    int32_t x0_, x1_, w_;                                                               \
    __asm__("uxtab %[p], %[p], %[e]\n\t"                                                \
            "ldrsb %[x0], [%[p]]\n\t"                                                   \
            "uxtab %[p], %[p], %[e], ror #16\n\t"                                       \
            "ldrsb %[x1], [%[p]]\n\t"                                                   \
            "sxtb16 %[w], %[e], ror #8\n\t"                                             \
            "pkhbt %[x0], %[x0], %[x1], lsl #16\n\t"                                    \
            "smlad %[acc], %[x0], %[w], %[acc]"                                          \
            : [p] "+r"(p_), [acc] "+r"(acc_), [x0] "=&r"(x0_), [x1] "=&r"(x1_),          \
              [w] "=&r"(w_)                                                             \
            : [e] "r"(e_));                                                             \
  } while (0)
/* The same for two rows `stride` bytes apart (two pixels of a 1x1 convolution): the
   entries are decoded once for both. */
#define TVMQ_SPARSE_PAIR2(acc0_, acc1_, p_, stride_, e_)                                \
  do {                                                                                  \
    int32_t x0_, x1_, y0_, y1_, w_;                                                     \
    __asm__("uxtab %[p], %[p], %[e]\n\t"                                                \
            "ldrsb %[x0], [%[p]]\n\t"                                                   \
            "ldrsb %[y0], [%[p], %[s]]\n\t"                                             \
            "uxtab %[p], %[p], %[e], ror #16\n\t"                                       \
            "ldrsb %[x1], [%[p]]\n\t"                                                   \
            "ldrsb %[y1], [%[p], %[s]]\n\t"                                             \
            "sxtb16 %[w], %[e], ror #8\n\t"                                             \
            "pkhbt %[x0], %[x0], %[x1], lsl #16\n\t"                                    \
            "pkhbt %[y0], %[y0], %[y1], lsl #16\n\t"                                    \
            "smlad %[a0], %[x0], %[w], %[a0]\n\t"                                       \
            "smlad %[a1], %[y0], %[w], %[a1]"                                            \
            : [p] "+r"(p_), [a0] "+r"(acc0_), [a1] "+r"(acc1_), [x0] "=&r"(x0_),         \
              [x1] "=&r"(x1_), [y0] "=&r"(y0_), [y1] "=&r"(y1_), [w] "=&r"(w_)           \
            : [e] "r"(e_), [s] "r"(stride_));                                           \
  } while (0)
#else
#define TVMQ_SPARSE_PAIR2(acc0_, acc1_, p_, stride_, e_)                                \
  do {                                                                                  \
    p_ += (e_) & 0xffu;                                                                 \
    acc0_ += p_[0] * (int32_t)(int8_t)((e_) >> 8);                                      \
    acc1_ += p_[stride_] * (int32_t)(int8_t)((e_) >> 8);                                \
    p_ += ((e_) >> 16) & 0xffu;                                                         \
    acc0_ += p_[0] * (int32_t)(int8_t)((e_) >> 24);                                     \
    acc1_ += p_[stride_] * (int32_t)(int8_t)((e_) >> 24);                               \
  } while (0)
#define TVMQ_SPARSE_PAIR(acc_, p_, e_)                                                  \
  do {                                                                                  \
    acc_ += *(p_ += (e_) & 0xffu) * (int32_t)(int8_t)((e_) >> 8);                       \
    acc_ += *(p_ += ((e_) >> 16) & 0xffu) * (int32_t)(int8_t)((e_) >> 24);              \
  } while (0)
#endif

/* One channel's dot product: `count` entries (a multiple of 8) from `entry` on x. */
static inline __attribute__((always_inline)) int32_t tvmq_sparse_dot(const int8_t *p,
                                                                     const uint32_t *entry,
                                                                     int32_t count,
                                                                     int32_t acc) {
  for (const uint32_t *end = entry + count / 2; entry < end; entry += 4) {
    uint32_t e01 = entry[0], e23 = entry[1], e45 = entry[2], e67 = entry[3];
    TVMQ_SPARSE_PAIR(acc, p, e01);
    TVMQ_SPARSE_PAIR(acc, p, e23);
    TVMQ_SPARSE_PAIR(acc, p, e45);
    TVMQ_SPARSE_PAIR(acc, p, e67);
  }
  return acc;
}

/* The same channel over two rows `stride` apart, into acc[0] and acc[1]. */
static inline __attribute__((always_inline)) void tvmq_sparse_dot2(const int8_t *p,
                                                                   int32_t stride,
                                                                   const uint32_t *entry,
                                                                   int32_t count,
                                                                   int32_t *acc) {
  int32_t acc0 = acc[0], acc1 = acc[1];
  for (const uint32_t *end = entry + count / 2; entry < end; entry += 2) {
    uint32_t e01 = entry[0], e23 = entry[1];
    TVMQ_SPARSE_PAIR2(acc0, acc1, p, stride, e01);
    TVMQ_SPARSE_PAIR2(acc0, acc1, p, stride, e23);
  }
  acc[0] = acc0, acc[1] = acc1;
}

static inline int32_t tvmq_sparse_s8(void *out_, void *x_, void *packed_, void *bias_,
                                     void *mult_, void *shift_, int32_t elements,
                                     int32_t zp, int32_t lo, int32_t hi) {
  int8_t *out = out_;
  const uint32_t *header = packed_;
  const int32_t depth = (int32_t)header[0], channels = (int32_t)header[1];
  const uint16_t *counts = (const uint16_t *)(header + 2);
  const uint32_t *first = (const uint32_t *)(counts + channels + (channels & 1));
  const int32_t *bias = bias_, *mult = mult_, *shift = shift_;
  const int32_t rows = elements / channels;
  int32_t row = 0;
  for (; row + 2 <= rows; row += 2) { /* two pixels at a time */
    const int8_t *x = (const int8_t *)x_ + row * depth;
    const uint32_t *entry = first;
    for (int32_t c = 0; c < channels; ++c) {
      int32_t acc[2] = {bias[c], bias[c]};
      tvmq_sparse_dot2(x, depth, entry, counts[c], acc);
      entry += counts[c] / 2;
      out[row * channels + c] = (int8_t)tvmq_requant_lane(acc[0], mult[c], shift[c], zp, lo, hi);
      out[(row + 1) * channels + c] =
          (int8_t)tvmq_requant_lane(acc[1], mult[c], shift[c], zp, lo, hi);
    }
  }
  for (; row < rows; ++row) {
    const int8_t *x = (const int8_t *)x_ + row * depth;
    const uint32_t *entry = first;
    for (int32_t c = 0; c < channels; ++c) {
      int32_t acc = tvmq_sparse_dot(x, entry, counts[c], bias[c]);
      entry += counts[c] / 2;
      out[row * channels + c] = (int8_t)tvmq_requant_lane(acc, mult[c], shift[c], zp, lo, hi);
    }
  }
  return 0;
}

#endif /* TVMQ_SPARSE_H */
