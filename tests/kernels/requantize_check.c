/* tvmq_requant_s8x{4,2,1} against TFLite's MultiplyByQuantizedMultiplier, written out
 * as tensorflow/lite/kernels/internal/common.h does it (SaturatingRoundingDoublingHighMul
 * with a truncating division, then RoundingDivideByPOT), on pseudo-random accumulators,
 * multipliers, right shifts 1..31 and zero points. Prints "mismatches N"; exit status 0
 * when N is 0. Built for the host, Cortex-M4 (DSP) and Cortex-M55 (Helium) by
 * tests/test_kernels.py and run natively or under QEMU with semihosting. */
#include <stdint.h>
#include <stdio.h>

#include "tvmq_requant.h"

static int32_t tflite_requantize(int32_t x, int32_t multiplier, int32_t right, int32_t zp,
                                 int32_t lo, int32_t hi) {
  int64_t product = (int64_t)x * multiplier;
  int64_t nudge = product >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  int32_t high = (int32_t)((product + nudge) / (1LL << 31));
  int32_t mask = (int32_t)((1u << right) - 1);
  int32_t remainder = high & mask, threshold = (mask >> 1) + (high < 0);
  int32_t y = (high >> right) + (remainder > threshold) + zp;
  return y < lo ? lo : (y > hi ? hi : y);
}

static uint64_t state = 88172645463325252ULL;
static uint64_t next(void) {
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  return state;
}

int main(void) {
  long mismatches = 0;
  for (long i = 0; i < 100000; ++i) {
    int32_t acc[4], bias[4], multiplier[4], right[4];
    int8_t out[4];
    for (int j = 0; j < 4; ++j) {
      uint64_t r = next();
      acc[j] = (int32_t)r >> (r >> 59); /* small and large magnitudes */
      bias[j] = (int32_t)(r >> 45) - 262144;
      multiplier[j] = (int32_t)((r >> 32) & 0x3fffffff) | 0x40000000; /* [2^30, 2^31) */
      right[j] = 1 + (int32_t)((r >> 20) % 31);
    }
    int32_t zp = (int32_t)(next() % 256) - 128, lo = -128 + (int32_t)(i % 3) * 64, hi = 127;
    int lanes = 4 >> (i % 3);
    if (lanes == 4) tvmq_requant_s8x4(out, acc, bias, multiplier, right, zp, lo, hi);
    if (lanes == 2) tvmq_requant_s8x2(out, acc, bias, multiplier, right, zp, lo, hi);
    if (lanes == 1) tvmq_requant_s8x1(out, acc, bias, multiplier, right, zp, lo, hi);
    for (int j = 0; j < lanes; ++j) {
      int32_t want = tflite_requantize(acc[j] + bias[j], multiplier[j], right[j], zp, lo, hi);
      if (want != out[j] && mismatches++ < 5)
        printf("x=%ld shift=%ld: want %ld, got %d\n", (long)(acc[j] + bias[j]), (long)right[j],
               (long)want, out[j]);
    }
  }
  printf("mismatches %ld\n", mismatches);
  return mismatches != 0;
}
