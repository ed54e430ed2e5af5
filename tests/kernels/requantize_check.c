/* tvmq_requant_s8x{4,2,1} and tvmq_rescale_s8x{4,2,1} (any shift; one pixel and rows of
 * pixels), the add's rescale and tvmq_add_s8 against TFLite's
 * MultiplyByQuantizedMultiplier, written out as tensorflow/lite/kernels/internal/common.h does it
 * (SaturatingRoundingDoublingHighMul with a truncating division, then
 * RoundingDivideByPOT), and its AddElementwise, on pseudo-random accumulators,
 * multipliers, right shifts and zero points. Prints "mismatches N"; exit status 0
 * when N is 0. Built for the host, Cortex-M4 (DSP), Cortex-M55 (Helium) and AArch64
 * (NEON) by tests/test_kernels.py and run natively, under QEMU with semihosting, or
 * under qemu-aarch64. */
#include <stdint.h>
#include <stdio.h>

#include "tvmq_requant.h"

static int32_t tflite_multiply(int32_t x, int32_t multiplier, int32_t right) {
  int64_t product = (int64_t)x * multiplier;
  int64_t nudge = product >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  int32_t high = (int32_t)((product + nudge) / (1LL << 31));
  int32_t mask = (int32_t)((1u << right) - 1);
  int32_t remainder = high & mask, threshold = (mask >> 1) + (high < 0);
  return (high >> right) + (remainder > threshold);
}

static int32_t clamp(int32_t y, int32_t lo, int32_t hi) { return y < lo ? lo : (y > hi ? hi : y); }

static int32_t tflite_requantize(int32_t x, int32_t multiplier, int32_t right, int32_t zp,
                                 int32_t lo, int32_t hi) {
  return clamp(tflite_multiply(x, multiplier, right) + zp, lo, hi);
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
  for (long i = 0; i < 20000; ++i) { /* rows of 1..7 pixels, strided as in NHWC */
    int32_t acc[7 * 9], bias[4], multiplier[4], right[4];
    int8_t out[7 * 11];
    int32_t count = 1 + (int32_t)(i % 7), lanes = 4 >> (i % 3);
    int32_t acc_stride = lanes + (int32_t)(next() % 6), out_stride = lanes + (int32_t)(next() % 8);
    for (int j = 0; j < 7 * 9; ++j) {
      uint64_t r = next();
      acc[j] = (int32_t)r >> (r >> 59);
    }
    for (int j = 0; j < 4; ++j) {
      uint64_t r = next();
      bias[j] = (int32_t)(r >> 45) - 262144;
      multiplier[j] = (int32_t)((r >> 32) & 0x3fffffff) | 0x40000000;
      right[j] = 1 + (int32_t)((r >> 20) % 31);
    }
    int32_t zp = (int32_t)(next() % 256) - 128, lo = -128 + (int32_t)(i % 3) * 64, hi = 127;
    if (lanes == 4)
      tvmq_requant_s8x4_row(out, acc, bias, multiplier, right, zp, lo, hi, count, out_stride,
                            acc_stride);
    if (lanes == 2)
      tvmq_requant_s8x2_row(out, acc, bias, multiplier, right, zp, lo, hi, count, out_stride,
                            acc_stride);
    if (lanes == 1)
      tvmq_requant_s8x1_row(out, acc, bias, multiplier, right, zp, lo, hi, count, out_stride,
                            acc_stride);
    for (int32_t q = 0; q < count; ++q)
      for (int j = 0; j < lanes; ++j) {
        int32_t x = acc[q * acc_stride + j] + bias[j];
        int32_t want = tflite_requantize(x, multiplier[j], right[j], zp, lo, hi);
        if (want != out[q * out_stride + j] && mismatches++ < 5)
          printf("row pixel %ld x=%ld shift=%ld: want %ld, got %d\n", (long)q, (long)x,
                 (long)right[j], (long)want, out[q * out_stride + j]);
      }
  }
  for (long i = 0; i < 40000; ++i) { /* tvmq_rescale_s8xN (rows of 1..7): shifts of either sign */
    int32_t acc[7 * 9], bias[4], multiplier[4], shift[4];
    int8_t out[7 * 11];
    int32_t count = 1 + (int32_t)(i % 7), lanes = 4 >> (i % 3);
    int32_t acc_stride = lanes + (int32_t)(next() % 6), out_stride = lanes + (int32_t)(next() % 8);
    for (int j = 0; j < 7 * 9; ++j) {
      uint64_t r = next();
      acc[j] = (int32_t)r >> (r >> 59);
    }
    for (int j = 0; j < 4; ++j) {
      uint64_t r = next();
      bias[j] = (int32_t)(r >> 45) - 262144;
      multiplier[j] = (int32_t)((r >> 32) & 0x3fffffff) | 0x40000000;
      /* mostly the shifts of multipliers near one (-2..3), some far to the right */
      shift[j] = (r >> 20) % 4 ? (int32_t)((r >> 8) % 6) - 2 : -(int32_t)((r >> 8) % 32);
    }
    int32_t zp = (int32_t)(next() % 256) - 128, lo = -128 + (int32_t)(i % 3) * 64, hi = 127;
    if (i % 2) /* one pixel */
      count = 1, acc_stride = out_stride = 0;
    if (lanes == 4 && i % 2)
      tvmq_rescale_s8x4(out, acc, bias, multiplier, shift, zp, lo, hi);
    if (lanes == 4 && !(i % 2))
      tvmq_rescale_s8x4_row(out, acc, bias, multiplier, shift, zp, lo, hi, count, out_stride,
                            acc_stride);
    if (lanes == 2 && i % 2)
      tvmq_rescale_s8x2(out, acc, bias, multiplier, shift, zp, lo, hi);
    if (lanes == 2 && !(i % 2))
      tvmq_rescale_s8x2_row(out, acc, bias, multiplier, shift, zp, lo, hi, count, out_stride,
                            acc_stride);
    if (lanes == 1 && i % 2)
      tvmq_rescale_s8x1(out, acc, bias, multiplier, shift, zp, lo, hi);
    if (lanes == 1 && !(i % 2))
      tvmq_rescale_s8x1_row(out, acc, bias, multiplier, shift, zp, lo, hi, count, out_stride,
                            acc_stride);
    for (int32_t q = 0; q < count; ++q)
      for (int j = 0; j < lanes; ++j) {
        int32_t x = acc[q * acc_stride + j] + bias[j];
        int32_t left = shift[j] > 0 ? shift[j] : 0, right = shift[j] < 0 ? -shift[j] : 0;
        /* shifted left as int32 arithmetic wraps (rescale_te, the host build) */
        int32_t want = tflite_requantize((int32_t)((uint32_t)x << left), multiplier[j], right,
                                         zp, lo, hi);
        if (want != out[q * out_stride + j] && mismatches++ < 5)
          printf("rescale x%d pixel %ld x=%ld shift=%ld: want %ld, got %d\n", (int)lanes,
                 (long)q, (long)x, (long)shift[j], (long)want, out[q * out_stride + j]);
      }
  }
  for (long i = 0; i < 100000; ++i) { /* the add's rescale: any shift, |x| < 2^29 */
    uint64_t r = next();
    int32_t x = ((int32_t)r >> (r >> 59)) / 4, right = (int32_t)((r >> 20) % 32);
    int32_t multiplier = (int32_t)((r >> 32) & 0x3fffffff) | 0x40000000;
    int32_t want = tflite_multiply(x, multiplier, right);
    int32_t got = tvmq_rescale_lane(x, multiplier, right);
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
    int32_t lanes[4];
    vst1q_s32(lanes, tvmq_rescale_s32x4(vdupq_n_s32(x), multiplier, vdupq_n_s32(-right)));
    if (lanes[0] != want) got = lanes[0];
#endif
    if (want != got && mismatches++ < 5)
      printf("rescale x=%ld shift=%ld: want %ld, got %ld\n", (long)x, (long)right, (long)want,
             (long)got);
  }
  for (long i = 0; i < 2000; ++i) { /* adds of 1..37 elements (Helium's predicated tail) */
    int8_t a[37], b[37], out[37];
    int32_t n = 1 + (int32_t)(next() % 37), p[11];
    for (int j = 0; j < n; ++j) a[j] = (int8_t)next(), b[j] = (int8_t)next();
    for (int j = 0; j < 3; ++j) { /* (zero point, multiplier, right shift): a, b, output */
      uint64_t r = next();
      p[3 * j] = (int32_t)(r % 256) - 128;
      p[3 * j + 1] = (int32_t)((r >> 32) & 0x3fffffff) | 0x40000000;
      p[3 * j + 2] = (int32_t)((r >> 20) % (j == 2 ? 24 : 8));
    }
    int32_t lo = -128 + (int32_t)(i % 2) * 100, hi = 127;
    tvmq_add_s8(out, a, b, n, p[0], p[1], p[2], p[3], p[4], p[5], p[7], p[8], p[6], lo, hi);
    for (int j = 0; j < n; ++j) {
      int32_t sum = tflite_multiply((a[j] - p[0]) * (1 << 20), p[1], p[2]) +
                    tflite_multiply((b[j] - p[3]) * (1 << 20), p[4], p[5]);
      int32_t want = tflite_requantize(sum, p[7], p[8], p[6], lo, hi);
      if (want != out[j] && mismatches++ < 5)
        printf("add %d + %d: want %ld, got %d\n", a[j], b[j], (long)want, out[j]);
    }
  }
  printf("mismatches %ld\n", mismatches);
  return mismatches != 0;
}
