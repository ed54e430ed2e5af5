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
 * channel's are padded with (0, 0) to a multiple of 4. Eight entries per iteration: one 32-bit
 * load holds two; on DSP cores SXTB16 widens both weights at once and SMLAD multiplies
 * both pairs in one instruction. Rows go three at a time (pixels of a 1x1 convolution), each
 * entry decoded once for all three, then two, then one.
 */
#ifndef TVMQ_SPARSE_H
#define TVMQ_SPARSE_H

#include <stdint.h>

#include "tvmq_requant.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__)
/* Per two entries e = (d0, w0, d1, w1) of one word: p advanced by d0, then d1, with
   UXTAB, the two inputs loaded with LDRSB and packed with PKHBT, both weights widened
   by one SXTB16, one SMLAD. The loops are written out so that nothing spills. */
#define TVMQ_SPARSE_STEP(e)                                                             \
  "uxtab %[p], %[p], " e "\n\t"                                                         \
  "ldrsb %[x0], [%[p]]\n\t"                                                             \
  "uxtab %[p], %[p], " e ", ror #16\n\t"                                                \
  "ldrsb %[x1], [%[p]]\n\t"                                                             \
  "sxtb16 %[w], " e ", ror #8\n\t"                                                      \
  "pkhbt %[x0], %[x0], %[x1], lsl #16\n\t"                                              \
  "smlad %[acc], %[x0], %[w], %[acc]\n\t"

/* One channel's dot product: `count` entries (a multiple of 4) from `entry` on p; eight
   per iteration, then four. */
static inline __attribute__((always_inline)) int32_t tvmq_sparse_dot(const int8_t *p,
                                                                     const uint32_t *entry,
                                                                     int32_t count,
                                                                     int32_t acc) {
  int32_t e0, e1, x0, x1, w, n = count & ~7;
  if (n > 0)
    __asm__ volatile("1:\n\t"
                     "ldrd %[e0], %[e1], [%[entry]], #8\n\t"
                     TVMQ_SPARSE_STEP("%[e0]") TVMQ_SPARSE_STEP("%[e1]")
                     "ldrd %[e0], %[e1], [%[entry]], #8\n\t"
                     TVMQ_SPARSE_STEP("%[e0]") TVMQ_SPARSE_STEP("%[e1]")
                     "subs %[n], %[n], #8\n\t"
                     "bgt 1b"
                     : [p] "+r"(p), [entry] "+r"(entry), [n] "+r"(n), [acc] "+r"(acc),
                       [e0] "=&r"(e0), [e1] "=&r"(e1), [x0] "=&r"(x0), [x1] "=&r"(x1),
                       [w] "=&r"(w)
                     :
                     : "cc", "memory");
  if (count & 4)
    __asm__ volatile("ldrd %[e0], %[e1], [%[entry]]\n\t"
                     TVMQ_SPARSE_STEP("%[e0]") TVMQ_SPARSE_STEP("%[e1]")
                     : [p] "+r"(p), [acc] "+r"(acc), [e0] "=&r"(e0), [e1] "=&r"(e1),
                       [x0] "=&r"(x0), [x1] "=&r"(x1), [w] "=&r"(w)
                     : [entry] "r"(entry)
                     : "memory");
  return acc;
}

/* The same channel over two rows `stride` apart (two pixels of a 1x1 convolution), each
   entry decoded once for both; into acc[0] and acc[1]. */
#define TVMQ_SPARSE_STEP2                                                               \
  "ldr %[e], [%[entry]], #4\n\t"                                                        \
  "uxtab %[p], %[p], %[e]\n\t"                                                          \
  "ldrsb %[x0], [%[p]]\n\t"                                                             \
  "ldrsb %[y0], [%[p], %[s]]\n\t"                                                       \
  "uxtab %[p], %[p], %[e], ror #16\n\t"                                                 \
  "ldrsb %[x1], [%[p]]\n\t"                                                             \
  "ldrsb %[y1], [%[p], %[s]]\n\t"                                                       \
  "sxtb16 %[w], %[e], ror #8\n\t"                                                       \
  "pkhbt %[x0], %[x0], %[x1], lsl #16\n\t"                                              \
  "pkhbt %[y0], %[y0], %[y1], lsl #16\n\t"                                              \
  "smlad %[a0], %[x0], %[w], %[a0]\n\t"                                                 \
  "smlad %[a1], %[y0], %[w], %[a1]\n\t"

static inline __attribute__((always_inline)) void tvmq_sparse_dot2(const int8_t *p,
                                                                   int32_t stride,
                                                                   const uint32_t *entry,
                                                                   int32_t count,
                                                                   int32_t *acc) {
  if (count <= 0) return;
  int32_t a0 = acc[0], a1 = acc[1], e, x0, x1, y0, y1, w;
  __asm__ volatile("1:\n\t" TVMQ_SPARSE_STEP2 TVMQ_SPARSE_STEP2
                   "subs %[n], %[n], #4\n\t"
                   "bgt 1b"
                   : [p] "+r"(p), [entry] "+r"(entry), [n] "+r"(count), [a0] "+r"(a0),
                     [a1] "+r"(a1), [e] "=&r"(e), [x0] "=&r"(x0), [x1] "=&r"(x1),
                     [y0] "=&r"(y0), [y1] "=&r"(y1), [w] "=&r"(w)
                   : [s] "r"(stride)
                   : "cc", "memory");
  acc[0] = a0, acc[1] = a1;
}

/* The same channel over three rows `stride` apart into acc[0..2]; each input pair is
   packed as soon as loaded and the entry word widened in place, so that it fits the
   registers. */
#define TVMQ_SPARSE_STEP3                                                               \
  "ldr %[e], [%[entry]], #4\n\t"                                                        \
  "uxtab %[p], %[p], %[e]\n\t"                                                          \
  "ldrsb %[x0], [%[p]]\n\t"                                                             \
  "ldrsb %[y0], [%[p], %[s]]\n\t"                                                       \
  "ldrsb %[z0], [%[p], %[s2]]\n\t"                                                      \
  "uxtab %[p], %[p], %[e], ror #16\n\t"                                                 \
  "ldrsb %[t], [%[p]]\n\t"                                                              \
  "pkhbt %[x0], %[x0], %[t], lsl #16\n\t"                                               \
  "ldrsb %[t], [%[p], %[s]]\n\t"                                                        \
  "pkhbt %[y0], %[y0], %[t], lsl #16\n\t"                                               \
  "ldrsb %[t], [%[p], %[s2]]\n\t"                                                       \
  "pkhbt %[z0], %[z0], %[t], lsl #16\n\t"                                               \
  "sxtb16 %[e], %[e], ror #8\n\t"                                                       \
  "smlad %[a0], %[x0], %[e], %[a0]\n\t"                                                 \
  "smlad %[a1], %[y0], %[e], %[a1]\n\t"                                                 \
  "smlad %[a2], %[z0], %[e], %[a2]\n\t"

static inline __attribute__((always_inline)) void tvmq_sparse_dot3(const int8_t *p,
                                                                   int32_t stride,
                                                                   const uint32_t *entry,
                                                                   int32_t count,
                                                                   int32_t *acc) {
  if (count <= 0) return;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], e, x0, y0, z0, t;
  __asm__ volatile("1:\n\t" TVMQ_SPARSE_STEP3 TVMQ_SPARSE_STEP3
                   "subs %[n], %[n], #4\n\t"
                   "bgt 1b"
                   : [p] "+r"(p), [entry] "+r"(entry), [n] "+r"(count), [a0] "+r"(a0),
                     [a1] "+r"(a1), [a2] "+r"(a2), [e] "=&r"(e), [x0] "=&r"(x0),
                     [y0] "=&r"(y0), [z0] "=&r"(z0), [t] "=&r"(t)
                   : [s] "r"(stride), [s2] "r"(2 * stride)
                   : "cc", "memory");
  acc[0] = a0, acc[1] = a1, acc[2] = a2;
}

#else /* plain C, the same arithmetic */
static inline int32_t tvmq_sparse_dot(const int8_t *p, const uint32_t *entry, int32_t count,
                                      int32_t acc) {
  for (int32_t n = 0; n < count; n += 2) {
    uint32_t e = *entry++;
    p += e & 0xffu;
    acc += p[0] * (int32_t)(int8_t)(e >> 8);
    p += (e >> 16) & 0xffu;
    acc += p[0] * (int32_t)(int8_t)(e >> 24);
  }
  return acc;
}

static inline void tvmq_sparse_dot2(const int8_t *p, int32_t stride, const uint32_t *entry,
                                    int32_t count, int32_t *acc) {
  acc[0] = tvmq_sparse_dot(p, entry, count, acc[0]);
  acc[1] = tvmq_sparse_dot(p + stride, entry, count, acc[1]);
}

static inline void tvmq_sparse_dot3(const int8_t *p, int32_t stride, const uint32_t *entry,
                                    int32_t count, int32_t *acc) {
  tvmq_sparse_dot2(p, stride, entry, count, acc);
  acc[2] = tvmq_sparse_dot(p + 2 * stride, entry, count, acc[2]);
}
#endif

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
  for (; row + 3 <= rows; row += 3) { /* three pixels at a time */
    const int8_t *x = (const int8_t *)x_ + row * depth;
    const uint32_t *entry = first;
    for (int32_t c = 0; c < channels; ++c) {
      int32_t acc[3] = {bias[c], bias[c], bias[c]};
      tvmq_sparse_dot3(x, depth, entry, counts[c], acc);
      entry += counts[c] / 2;
      for (int32_t i = 0; i < 3; ++i)
        out[(row + i) * channels + c] =
            (int8_t)tvmq_requant_lane(acc[i], mult[c], shift[c], zp, lo, hi);
    }
  }
  for (; row + 2 <= rows; row += 2) { /* then two */
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
