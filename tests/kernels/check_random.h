/* The random inputs shared by the kernel checks: a fixed-seed xorshift64 generator
 * (the same sequence on every core, so a mismatch reproduces) and int8 activations
 * that hit -128 and 127 often. Included by one check program each, hence static. */
#ifndef TVMQ_CHECK_RANDOM_H
#define TVMQ_CHECK_RANDOM_H

#include <stdint.h>

static uint64_t state = 88172645463325252ULL;
static uint64_t next(void) {
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  return state;
}

static int8_t activation(void) {
  uint64_t r = next() % 64;
  return r == 0 ? -128 : r == 1 ? 127 : (int8_t)next();
}

#endif
