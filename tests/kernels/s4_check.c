/* tvmq_s4.h's int8 x int4 kernels (tvmq_dot_s4_1xN, tvmq_dot_s4_2xN, tvmq_dw_s4x4)
 * against plain sums over unpacked weights: depths 1..100 (whole 8-weight steps and
 * every tail), even and odd element positions and strides, every weight value -8..7,
 * activations at -128 and 127, nonzero starting accumulators. Prints the path compiled
 * in and "mismatches N"; exit status 0 when N is 0. Built for the host, Cortex-M4 and
 * Cortex-M55 (DSP) and AArch64 by tests/test_int4_weights.py. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check_random.h"
#include "tvmq_s4.h"

enum { ELEMENTS = 2 * 4 * 128 };
static int8_t weight[ELEMENTS];
static uint8_t packed[ELEMENTS / 2 + 4];

/* CMSIS-NN's order: element e in the low nibble of byte e / 2 when e is even. */
static void pack(void) {
  memset(packed, 0, sizeof packed);
  for (int e = 0; e < ELEMENTS; ++e) {
    weight[e] = (int8_t)((int)(next() % 16) - 8);
    packed[e >> 1] |= (uint8_t)((weight[e] & 15) << ((e & 1) * 4));
  }
}

typedef int32_t (*dot1_fn)(void *, void *, void *, int32_t, int32_t, int32_t);
typedef int32_t (*dot2_fn)(void *, void *, void *, int32_t, int32_t, int32_t, int32_t, int32_t);

int main(void) {
  static int8_t a[2 * 160];
  long mismatches = 0, checks = 0;
  dot1_fn dots1[3] = {tvmq_dot_s4_1x1, tvmq_dot_s4_1x2, tvmq_dot_s4_1x4};
  dot2_fn dots2[3] = {tvmq_dot_s4_2x1, tvmq_dot_s4_2x2, tvmq_dot_s4_2x4};
  for (long t = 0; t < 3000; ++t, ++checks) {
    int32_t k = 1 + (int32_t)(next() % 100), lanes = 1 << (t % 3), pixels = 1 + (t / 3) % 2;
    int32_t a_stride = k + (int32_t)(next() % 60), w_stride = k + (int32_t)(next() % 28);
    int32_t w_at = (int32_t)(next() % 16);
    if (t % 4 == 0) w_at &= ~1, w_stride &= ~1; /* the aligned fast path, most often */
    pack();
    for (size_t i = 0; i < sizeof a; ++i) a[i] = activation();
    int32_t acc[8], want[8];
    for (int i = 0; i < 8; ++i) acc[i] = want[i] = (int32_t)(next() % 100000) - 50000;
    for (int p = 0; p < pixels; ++p)
      for (int j = 0; j < lanes; ++j)
        for (int32_t i = 0; i < k; ++i)
          want[p * 4 + j] += a[p * a_stride + i] * weight[w_at + j * w_stride + i];
    if (pixels == 1)
      dots1[t % 3](acc, a, packed, w_at, k, w_stride);
    else
      dots2[t % 3](acc, a, packed, w_at, k, w_stride, a_stride, 4);
    for (int i = 0; i < 8; ++i)
      if (acc[i] != want[i] && mismatches++ < 5)
        printf("%ldx%d k=%ld at=%ld stride=%ld acc %d: want %ld, got %ld\n", (long)pixels,
               (int)lanes, (long)k, (long)w_at, (long)w_stride, i, (long)want[i], (long)acc[i]);
  }
  enum { CHANNELS = 8, COLUMNS = 6 };
  static int8_t x[5 * COLUMNS * CHANNELS];
  for (long t = 0; t < 1000; ++t, ++checks) {
    int32_t kh = 1 + (int32_t)(next() % 5), kw = 1 + (int32_t)(next() % 5);
    int32_t w_col = 4 + (int32_t)(next() % 3), w_row = kw * w_col + (int32_t)(next() % 3);
    int32_t w_at = (int32_t)(next() % 8);
    if (t % 2 == 0) w_at &= ~1, w_col &= ~1, w_row &= ~1;
    pack();
    for (size_t i = 0; i < sizeof x; ++i) x[i] = activation();
    int32_t acc[4], want[4];
    for (int j = 0; j < 4; ++j) acc[j] = want[j] = (int32_t)(next() % 100000) - 50000;
    for (int32_t r = 0; r < kh; ++r)
      for (int32_t c = 0; c < kw; ++c)
        for (int j = 0; j < 4; ++j)
          want[j] += x[r * COLUMNS * CHANNELS + c * CHANNELS + j] *
                     weight[w_at + r * w_row + c * w_col + j];
    tvmq_dw_s4x4(acc, x, packed, w_at, kh, kw, COLUMNS * CHANNELS, CHANNELS, w_row, w_col);
    for (int j = 0; j < 4; ++j)
      if (acc[j] != want[j] && mismatches++ < 5)
        printf("dw %ldx%ld at=%ld lane %d: want %ld, got %ld\n", (long)kh, (long)kw, (long)w_at,
               j, (long)want[j], (long)acc[j]);
  }
  printf("path %s\nchecks %ld\nmismatches %ld\n", TVMQ_S4_PATH, checks, mismatches);
  return mismatches != 0;
}
