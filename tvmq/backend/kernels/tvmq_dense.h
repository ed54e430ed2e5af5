/* int8 dense layers, four output rows per call, on weights interleaved at compile time.
 *
 * tvmq_dense_s8x4(acc, a, b, k, b_stride): acc[j] += sum_i a[i] * W[j][i] for j < 4,
 * i < k, where b holds the four rows of W interleaved (tvmq.backend.dense): for each
 * group g of four inputs, the 16 bytes at b + 16 g are W[0][4g..4g+3], W[1][4g..],
 * W[2][4g..], W[3][4g..]; the k % 4 inputs left over follow, row after row. The block
 * is as big as the four rows (4 k bytes) and starts where row 0 did, so the caller's
 * pointer arithmetic is that of tvmq_dot_s8_1x4 (whose arguments these are: b_stride
 * is not needed, but int4 and codebook builds rewrite this call into theirs).
 *
 * On the DSP extension (Cortex-M4/M7/M33), a group of four inputs is loaded and widened
 * once for all four rows (CMSIS-NN's arm_nn_vec_mat_mult_t_s8 shares it between two),
 * and the rows' 16 weight bytes are one LDM: 20 instructions per 16 multiply-accumulates
 * where tvmq_dot_s8_1x4 takes 23 and separate loop counting. Elsewhere plain C (the
 * default schedule picks this kernel on the DSP cores only; tuning may elsewhere).
 * The block must be 4-byte aligned (LDM): the weights blob aligns every constant to 16
 * and each block is 4 k bytes.
 */
#ifndef TVMQ_DENSE_H
#define TVMQ_DENSE_H

#include <stdint.h>

#if !(defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)) && !defined(__ARM_NEON) && \
    defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

/* One group: four inputs (one LDR, widened to even and odd pairs) against the four
   rows' words (one LDMIA into r8-r11), both pointers advanced. */
#define TVMQ_DENSE_ROW(s, w)                                                            \
  "sxtb16 %[t], " w "\n\t"                                                             \
  "smlad %[" s "], %[ae], %[t], %[" s "]\n\t"                                          \
  "sxtb16 %[t], " w ", ror #8\n\t"                                                     \
  "smlad %[" s "], %[ao], %[t], %[" s "]\n\t"
#define TVMQ_DENSE_GROUP                                                               \
  "ldr %[ao], [%[a]], #4\n\t"                                                          \
  "ldmia %[b]!, {r8, r9, r10, r11}\n\t"                                                \
  "sxtb16 %[ae], %[ao]\n\t"                                                            \
  "sxtb16 %[ao], %[ao], ror #8\n\t"                                                    \
  TVMQ_DENSE_ROW("s0", "r8") TVMQ_DENSE_ROW("s1", "r9")                                \
  TVMQ_DENSE_ROW("s2", "r10") TVMQ_DENSE_ROW("s3", "r11")
/* The loops are whole asm blocks: between separate blocks the compiler moves the
   sums from register to register and spills the loop's end. */
#define TVMQ_DENSE_LOOP(body)                                                          \
  __asm__("1:\n\t" body "cmp %[a], %[end]\n\t"                                          \
          "bne 1b\n\t"                                                                 \
          : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [a] "+r"(a),    \
            [b] "+r"(b), [ae] "=&r"(ae), [ao] "=&r"(ao), [t] "=&r"(t)                  \
          : [end] "r"(end)                                                             \
          : "r8", "r9", "r10", "r11", "cc", "memory")

static inline int32_t tvmq_dense_s8x4(void *acc_, void *a_, void *b_, int32_t k,
                                      int32_t b_stride) {
  (void)b_stride;
  int32_t *acc = acc_;
  const int8_t *a = a_;
  const int8_t *b = b_;
  int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], ae, ao, t;
  const int8_t *end = a + (k & ~15);
  if (a != end) /* four groups per pass: one loop test for 64 multiply-accumulates */
    TVMQ_DENSE_LOOP(TVMQ_DENSE_GROUP TVMQ_DENSE_GROUP TVMQ_DENSE_GROUP TVMQ_DENSE_GROUP);
  end = a + (k & 12);
  if (a != end) TVMQ_DENSE_LOOP(TVMQ_DENSE_GROUP);
  int32_t tail = k & 3;
  for (int32_t i = 0; i < tail; ++i) {
    s0 += (int32_t)a[i] * b[i];
    s1 += (int32_t)a[i] * b[tail + i];
    s2 += (int32_t)a[i] * b[2 * tail + i];
    s3 += (int32_t)a[i] * b[3 * tail + i];
  }
  acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
  return 0;
}

#else

static inline int32_t tvmq_dense_s8x4(void *acc_, void *a_, void *b_, int32_t k,
                                      int32_t b_stride) {
  (void)b_stride;
  int32_t *acc = acc_;
  const int8_t *a = a_, *b = b_;
  int32_t groups = k / 4, tail = k % 4;
  for (int32_t g = 0; g < groups; ++g)
    for (int j = 0; j < 4; ++j)
      for (int c = 0; c < 4; ++c) acc[j] += (int32_t)a[4 * g + c] * b[16 * g + 4 * j + c];
  for (int j = 0; j < 4; ++j)
    for (int32_t c = 0; c < tail; ++c)
      acc[j] += (int32_t)a[4 * groups + c] * b[16 * groups + j * tail + c];
  return 0;
}

#endif

#endif /* TVMQ_DENSE_H */
