/* Checks tvmq_dot.h's micro-kernels, as compiled for the machine at hand, against
 * plain integer loops on random int8 data with every edge value (-128, 127) and
 * every remainder of k. Prints the number of mismatches; exit status 1 if any. */
#include <stdio.h>
#include <stdlib.h>

#include "tvmq_dot.h"

static uint32_t state = 12345u;
static int8_t random_s8(void) {
  state = state * 1664525u + 1013904223u;
  uint32_t r = state >> 24;
  return r < 16 ? -128 : r < 32 ? 127 : (int8_t)r;
}

/* One pixel (form 1: tvmq_dot_s8_1xN) or two a_stride bytes apart (form 2:
   tvmq_dot_s8_2xN, form 3: tvmq_dot_s8_2xN_no_mmla; into acc[j] and acc[4 + j]). */
static int check_dot(int form, int n, int32_t k, int32_t stride) {
  int pixels = form == 1 ? 1 : 2;
  enum { A_STRIDE = 83 };
  int8_t a[A_STRIDE + 80], b[4 * 96];
  int32_t acc[8], expected[8];
  for (size_t i = 0; i < sizeof a; ++i) a[i] = random_s8();
  for (int i = 0; i < 4 * 96; ++i) b[i] = random_s8();
  for (int j = 0; j < 8; ++j) acc[j] = expected[j] = (int32_t)random_s8() * 1000;
  for (int p = 0; p < pixels; ++p)
    for (int j = 0; j < n; ++j)
      for (int32_t i = 0; i < k; ++i)
        expected[4 * p + j] += (int32_t)a[p * A_STRIDE + i] * b[j * stride + i];
  if (form == 1 && n == 1) tvmq_dot_s8_1x1(acc, a, b, k, stride);
  if (form == 1 && n == 2) tvmq_dot_s8_1x2(acc, a, b, k, stride);
  if (form == 1 && n == 4) tvmq_dot_s8_1x4(acc, a, b, k, stride);
  if (form == 2 && n == 1) tvmq_dot_s8_2x1(acc, a, b, k, stride, A_STRIDE, 4);
  if (form == 2 && n == 2) tvmq_dot_s8_2x2(acc, a, b, k, stride, A_STRIDE, 4);
  if (form == 2 && n == 4) tvmq_dot_s8_2x4(acc, a, b, k, stride, A_STRIDE, 4);
  if (form == 3 && n == 1) tvmq_dot_s8_2x1_no_mmla(acc, a, b, k, stride, A_STRIDE, 4);
  if (form == 3 && n == 2) tvmq_dot_s8_2x2_no_mmla(acc, a, b, k, stride, A_STRIDE, 4);
  if (form == 3 && n == 4) tvmq_dot_s8_2x4_no_mmla(acc, a, b, k, stride, A_STRIDE, 4);
  for (int j = 0; j < 8; ++j)
    if (acc[j] != expected[j]) return 1;
  return 0;
}

static int check_depthwise(int32_t kh, int32_t kw) {
  enum { CHANNELS = 8, COLUMNS = 6 };
  int8_t x[5 * COLUMNS * CHANNELS], w[5 * 5 * 4];
  int32_t acc[4], expected[4];
  for (size_t i = 0; i < sizeof x; ++i) x[i] = random_s8();
  for (size_t i = 0; i < sizeof w; ++i) w[i] = random_s8();
  for (int j = 0; j < 4; ++j) acc[j] = expected[j] = (int32_t)random_s8() * 1000;
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c)
      for (int j = 0; j < 4; ++j)
        expected[j] += (int32_t)x[r * COLUMNS * CHANNELS + c * CHANNELS + j] * w[r * kw * 4 + c * 4 + j];
  tvmq_dw_s8x4(acc, x, w, kh, kw, COLUMNS * CHANNELS, CHANNELS, kw * 4, 4);
  for (int j = 0; j < 4; ++j)
    if (acc[j] != expected[j]) return 1;
  return 0;
}

int main(void) {
  int failures = 0, checks = 0;
  for (int trial = 0; trial < 20; ++trial)
    for (int form = 1; form <= 3; ++form)
      for (int n = 1; n <= 4; n *= 2)
        for (int32_t k = 1; k <= 80; ++k, ++checks)
          failures += check_dot(form, n, k, k + trial % 16);
  for (int trial = 0; trial < 20; ++trial)
    for (int32_t kh = 1; kh <= 5; ++kh)
      for (int32_t kw = 1; kw <= 5; ++kw, ++checks) failures += check_depthwise(kh, kw);
  printf("%d of %d checks failed\n", failures, checks);
  return failures != 0;
}
