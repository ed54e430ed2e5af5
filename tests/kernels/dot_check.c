/* tvmq_dot_s8_1xN, tvmq_dot_s8_2xN, their rows (tvmq_dot_s8_rowxN), depthwise rows
 * (tvmq_dw_s8x4_row) and dense rows on interleaved weights (tvmq_dense_s8x4) against
 * the plain sum, for depths 1..100 (1..200 dense: whole SIMD steps and every tail),
 * channel and pixel strides, and nonzero starting
 * accumulators. Prints the SIMD path compiled in and "mismatches N"; exit status 0 when
 * N is 0. Built for the host, Cortex-M4 (DSP), Cortex-M55 (Helium) and AArch64 with
 * the dot-product extension (SDOT, under qemu-aarch64) by tests/test_kernels.py. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tvmq_dot.h"

static uint64_t state = 88172645463325252ULL;
static uint64_t next(void) {
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  return state;
}

typedef int32_t (*dot2_fn)(void *, void *, void *, int32_t, int32_t, int32_t, int32_t);

int main(void) {
  static int8_t a[2 * 160], b[4 * 128];
  long mismatches = 0;
  dot2_fn dots[3] = {tvmq_dot_s8_2x1, tvmq_dot_s8_2x2, tvmq_dot_s8_2x4};
  for (long t = 0; t < 3000; ++t) {
    int32_t k = 1 + (int32_t)(next() % 100), lanes = 1 << (t % 3);
    int32_t a_stride = k + (int32_t)(next() % 60), b_stride = k + (int32_t)(next() % 28);
    for (size_t i = 0; i < sizeof a; ++i) a[i] = (int8_t)next();
    for (size_t i = 0; i < sizeof b; ++i) b[i] = (int8_t)next();
    int32_t acc[8], want[8];
    for (int i = 0; i < 8; ++i) acc[i] = want[i] = (int32_t)(next() % 100000) - 50000;
    for (int p = 0; p < 2; ++p)
      for (int j = 0; j < lanes; ++j)
        for (int32_t i = 0; i < k; ++i) want[p * 4 + j] += a[p * a_stride + i] * b[j * b_stride + i];
    dots[t % 3](acc, a, b, k, b_stride, a_stride, 4);
    for (int p = 0; p < 2; ++p)
      for (int j = 0; j < lanes; ++j)
        if (acc[p * 4 + j] != want[p * 4 + j] && mismatches++ < 5)
          printf("2x%d k=%ld pixel %d lane %d: want %ld, got %ld\n", (int)lanes, (long)k, p, j,
                 (long)want[p * 4 + j], (long)acc[p * 4 + j]);
  }
  typedef int32_t (*row_fn)(void *, void *, void *, int32_t, int32_t, int32_t, int32_t, int32_t);
  row_fn rows[3] = {tvmq_dot_s8_rowx1, tvmq_dot_s8_rowx2, tvmq_dot_s8_rowx4};
  for (long t = 0; t < 1500; ++t) { /* rows of 1..7 pixels: pairs and an odd tail */
    static int8_t x[7 * 48];
    int32_t k = 1 + (int32_t)(next() % 40), lanes = 1 << (t % 3), count = 1 + (int32_t)(t % 7);
    int32_t a_stride = k + (int32_t)(next() % 8), b_stride = k + (int32_t)(next() % 28);
    for (size_t i = 0; i < sizeof x; ++i) x[i] = (int8_t)next();
    for (size_t i = 0; i < sizeof b; ++i) b[i] = (int8_t)next();
    int32_t acc[7 * 5], want[7 * 5];
    for (int i = 0; i < 7 * 5; ++i) acc[i] = want[i] = (int32_t)(next() % 100000) - 50000;
    for (int32_t p = 0; p < count; ++p)
      for (int j = 0; j < lanes; ++j)
        for (int32_t i = 0; i < k; ++i) want[p * 5 + j] += x[p * a_stride + i] * b[j * b_stride + i];
    rows[t % 3](acc, x, b, k, b_stride, a_stride, 5, count);
    for (int i = 0; i < 7 * 5; ++i)
      if (acc[i] != want[i] && mismatches++ < 5)
        printf("row%d x%d k=%ld: element %d want %ld, got %ld\n", (int)count, (int)lanes,
               (long)k, i, (long)want[i], (long)acc[i]);
  }
  for (long t = 0; t < 1500; ++t) { /* depthwise rows: 1..7 pixels, strides 1..2, windows */
    static int8_t x[3 * 20 * 12], w[3 * 3 * 12];
    int32_t kh = 1 + (int32_t)(next() % 3), kw = 1 + (int32_t)(next() % 3);
    int32_t count = 1 + (int32_t)(t % 7), stride = 1 + (int32_t)(t % 2), channels = 12;
    int32_t x_col = channels, x_row = 20 * channels, w_col = channels, w_row = 3 * channels;
    for (size_t i = 0; i < sizeof x; ++i) x[i] = (int8_t)next();
    for (size_t i = 0; i < sizeof w; ++i) w[i] = (int8_t)next();
    int32_t acc[7 * 6], want[7 * 6];
    for (int i = 0; i < 7 * 6; ++i) acc[i] = want[i] = (int32_t)(next() % 100000) - 50000;
    int32_t first = 4 * (int32_t)(next() % 3); /* a block of four of the 12 channels */
    for (int32_t p = 0; p < count; ++p)
      for (int j = 0; j < 4; ++j)
        for (int32_t r = 0; r < kh; ++r)
          for (int32_t c = 0; c < kw; ++c)
            want[p * 6 + j] += x[r * x_row + (p * stride + c) * x_col + first + j] *
                               w[r * w_row + c * w_col + first + j];
    tvmq_dw_s8x4_row(acc, x + first, w + first, kh, kw, x_row, x_col, w_row, w_col, count,
                     stride * x_col, 6);
    for (int i = 0; i < 7 * 6; ++i)
      if (acc[i] != want[i] && mismatches++ < 5)
        printf("dw row%d %dx%d stride %d: element %d want %ld, got %ld\n", (int)count, (int)kh,
               (int)kw, (int)stride, i, (long)want[i], (long)acc[i]);
  }
  for (long t = 0; t < 1500; ++t) { /* dense rows on interleaved weights, depths 1..200 */
    static int8_t x[200], w[4][200];
    static int8_t packed[4 * 200] __attribute__((aligned(4)));
    int32_t k = 1 + (int32_t)(t % 200), groups = k / 4, tail = k % 4;
    for (int32_t i = 0; i < k; ++i) x[i] = (int8_t)next();
    for (int j = 0; j < 4; ++j)
      for (int32_t i = 0; i < k; ++i) w[j][i] = (int8_t)next();
    for (int j = 0; j < 4; ++j) {
      for (int32_t g = 0; g < groups; ++g) memcpy(packed + 16 * g + 4 * j, &w[j][4 * g], 4);
      memcpy(packed + 16 * groups + j * tail, &w[j][4 * groups], (size_t)tail);
    }
    int32_t acc[4], want[4];
    for (int j = 0; j < 4; ++j) acc[j] = want[j] = (int32_t)(next() % 100000) - 50000;
    for (int j = 0; j < 4; ++j)
      for (int32_t i = 0; i < k; ++i) want[j] += x[i] * w[j][i];
    tvmq_dense_s8x4(acc, x, packed, k, k);
    for (int j = 0; j < 4; ++j)
      if (acc[j] != want[j] && mismatches++ < 5)
        printf("dense k=%ld row %d: want %ld, got %ld\n", (long)k, j, (long)want[j],
               (long)acc[j]);
  }
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
  printf("path helium\n");
#elif defined(__ARM_FEATURE_DOTPROD)
  printf("path sdot\n");
#elif defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  printf("path dsp\n");
#endif
  printf("mismatches %ld\n", mismatches);
  return mismatches != 0;
}
