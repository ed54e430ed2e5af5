/* A hand-written model implementing tvmq_model.h, the fixture of the
 * hardware-in-the-loop tests (tests/test_hil_*.py compute the same in numpy):
 *   y[i] = saturate_int8(x[i] * 3 - 7)          x, y: int8[1000]
 *   mean = (float)sum(y) / 1000.0f               float32[1]
 * It returns 0, or 1 when x[0] == -128 and x[1] == 127 (a way to test how a
 * failing model is reported). */
#include "tvmq_model.h"

#define N 1000

static int8_t x[N] __attribute__((aligned(16)));
static int8_t y[N] __attribute__((aligned(16)));
static float mean[1] __attribute__((aligned(16)));

static int32_t run(void) {
  if (x[0] == -128 && x[1] == 127) return 1;
  int32_t sum = 0;
  for (int i = 0; i < N; i++) {
    int32_t v = x[i] * 3 - 7;
    v = v < -128 ? -128 : v > 127 ? 127 : v;
    y[i] = (int8_t)v;
    sum += v;
  }
  mean[0] = (float)sum / 1000.0f;
  return 0;
}

static const tvmq_tensor_t inputs[] = {{"x", "int8", N, x}};
static const tvmq_tensor_t outputs[] = {{"y", "int8", N, y}, {"mean", "float32", 4, mean}};

const tvmq_model_t tvmq_model = {
    .name = "tvmq-test-model",
    .build_id = "0123456789abcdef",
    .num_inputs = 1,
    .num_outputs = 2,
    .inputs = inputs,
    .outputs = outputs,
    .arena_bytes = 0,
    .run = run,
};
