/* Sparse int8 weights, stored without their zeros, for dense layers and 1x1 convolutions.
 *
 * tvmq_sparse_s8(out, x, packed, bias, mult, shift, elements, zp, lo, hi): for each of
 * the elements / channels rows of x (depth int8 each, NHWC pixels or dense rows) and
 * each output channel c,
 *   out[row, c] = requant(sum over c's nonzero weights w at input index i of x[row, i] * w)
 * with tvmq_requant.h's rounding (bit-exact with the dense kernels). `packed`
 * (tvmq.backend.sparse.pack_weights): uint32 depth, uint32 channels, uint16 entries per
 * channel (a multiple of 4; padded to 4 bytes), then per channel its entries, 2 bytes
 * each: the distance from the previous entry's input index (uint8; the first from
 * index 0) and the weight (int8). Gaps over 255 take extra entries of weight 0, and each
 * channel is padded to 4 entries with (0, 0). Four entries per iteration: one 32-bit
 * load holds two; on DSP cores SXTB16 widens both weights at once and SMLAD multiplies
 * both pairs in one instruction.
 */
#ifndef TVMQ_SPARSE_H
#define TVMQ_SPARSE_H

#include <stdint.h>
#include <string.h>

#include "tvmq_requant.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
/* x[d0] and x[d0 + d1] of two entries (d, w) in one word; their products with w added. */
#define TVMQ_SPARSE_PAIR(acc, p, e)                                                     \
  do {                                                                                  \
    int32_t x0_ = *(p += (e) & 0xffu);                                                  \
    int32_t x1_ = *(p += ((e) >> 16) & 0xffu);                                          \
    acc = __smlad((int32_t)(((uint32_t)x0_ & 0xffffu) | ((uint32_t)x1_ << 16)),         \
                  __sxtb16(((e) >> 8) | ((e) << 24)), acc);                                  \
  } while (0)
#else
#define TVMQ_SPARSE_PAIR(acc, p, e)                                                     \
  do {                                                                                  \
    acc += *(p += (e) & 0xffu) * (int32_t)(int8_t)((e) >> 8);                           \
    acc += *(p += ((e) >> 16) & 0xffu) * (int32_t)(int8_t)((e) >> 24);                  \
  } while (0)
#endif

static inline int32_t tvmq_sparse_s8(void *out_, void *x_, void *packed_, void *bias_,
                                     void *mult_, void *shift_, int32_t elements,
                                     int32_t zp, int32_t lo, int32_t hi) {
  int8_t *out = out_;
  const uint32_t *header = packed_;
  const int32_t depth = (int32_t)header[0], channels = (int32_t)header[1];
  const uint16_t *counts = (const uint16_t *)(header + 2);
  const uint8_t *first = (const uint8_t *)(counts + channels + (channels & 1));
  const int32_t *bias = bias_, *mult = mult_, *shift = shift_;
  for (int32_t row = 0; row < elements / channels; ++row) {
    const int8_t *x = (const int8_t *)x_ + row * depth;
    const uint8_t *entry = first;
    for (int32_t c = 0; c < channels; ++c) {
      const int8_t *p = x;
      int32_t acc = bias[c];
      for (int32_t n = counts[c]; n > 0; n -= 4, entry += 8) {
        uint32_t e01, e23;
        memcpy(&e01, entry, 4);
        memcpy(&e23, entry + 4, 4);
        TVMQ_SPARSE_PAIR(acc, p, e01);
        TVMQ_SPARSE_PAIR(acc, p, e23);
      }
      out[row * channels + c] = (int8_t)tvmq_requant_lane(acc, mult[c], shift[c], zp, lo, hi);
    }
  }
  return 0;
}

#endif /* TVMQ_SPARSE_H */
