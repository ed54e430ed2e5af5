/* tvmq_cb.h's int8 x codebook kernels (tvmq_dot_cb_1xN, tvmq_dot_cb_2xN, tvmq_dw_cbx4,
 * their pair-table forms tvmq_dot_cbp_*, tvmq_dw_cbpx4, their per-channel forms
 * tvmq_dot_cbc_*, tvmq_dw_cbcx4, and the row forms _rowxN / _row of each) against
 * plain sums over looked-up weights: depths 1..100 (whole 8-weight steps and
 * every tail), even and odd element positions and strides, every index 0..15, a fresh
 * table of int8 centroids each case (-128 and 127 included), activations at -128 and
 * 127, nonzero starting accumulators; per-channel tables laid out as the build's
 * (lanes one channel each) and across channels within a lane. Prints the path compiled
 * in and "mismatches N"; exit status 0 when N is 0. Built for the host, Cortex-M4 and
 * Cortex-M55 (DSP) and AArch64 by tests/test_codebook.py. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check_random.h"
#include "tvmq_cb.h"

enum { ELEMENTS = 2 * 4 * 128 };
static int8_t weight[ELEMENTS];
static uint8_t packed[16 + ELEMENTS / 2 + 4] __attribute__((aligned(16)));
static uint8_t paired[16 + 1024 + ELEMENTS / 2 + 4] __attribute__((aligned(16)));
static uint8_t index_of[ELEMENTS];
/* The per-channel form: header (div, count), count tables, indices; its weights. */
static int8_t channel_weight[ELEMENTS];
static uint8_t channels[4 + 16 * ELEMENTS + ELEMENTS / 2 + 4] __attribute__((aligned(16)));

/* The table, then the indices in CMSIS-NN's order: element e in the low nibble of
   byte 16 + e / 2 when e is even; the pair form has the 256 int16 pairs between. */
static void pack(void) {
  memset(packed, 0, sizeof packed);
  memset(paired, 0, sizeof paired);
  for (int i = 0; i < 16; ++i) packed[i] = (uint8_t)next();
  packed[next() % 16] = 0x80, packed[next() % 16] = 0x7F;
  memcpy(paired, packed, 16);
  for (uint32_t v = 0; v < 256; ++v) {
    uint32_t pair = (uint16_t)(int16_t)(int8_t)packed[v & 15] |
                    ((uint32_t)(int32_t)(int8_t)packed[v >> 4] << 16);
    memcpy(paired + 16 + 4 * v, &pair, 4);
  }
  for (int e = 0; e < ELEMENTS; ++e) {
    int index = (int)(next() % 16);
    index_of[e] = (uint8_t)index;
    weight[e] = (int8_t)packed[index];
    packed[16 + (e >> 1)] |= (uint8_t)(index << ((e & 1) * 4));
    paired[1040 + (e >> 1)] |= (uint8_t)(index << ((e & 1) * 4));
  }
}

/* The same indices as pack()'s, with `count` fresh tables, element e in table
   (e / div) % count. */
static void pack_channels(uint16_t div, uint16_t count) {
  uint16_t header[2] = {div, count};
  memcpy(channels, header, 4);
  uint8_t *tables = channels + 4, *indices = channels + 4 + 16 * count;
  for (int i = 0; i < 16 * count; ++i) tables[i] = (uint8_t)next();
  tables[next() % (16 * count)] = 0x80, tables[next() % (16 * count)] = 0x7F;
  memset(indices, 0, ELEMENTS / 2 + 4);
  for (int e = 0; e < ELEMENTS; ++e) {
    channel_weight[e] = (int8_t)tables[16 * ((e / div) % count) + index_of[e]];
    indices[e >> 1] |= (uint8_t)(index_of[e] << ((e & 1) * 4));
  }
}

typedef int32_t (*dot1_fn)(void *, void *, void *, int32_t, int32_t, int32_t);
typedef int32_t (*dot2_fn)(void *, void *, void *, int32_t, int32_t, int32_t, int32_t, int32_t);
typedef int32_t (*row_fn)(void *, void *, void *, int32_t, int32_t, int32_t, int32_t, int32_t,
                          int32_t);

int main(void) {
  static int8_t a[3 * 160];
  long mismatches = 0, checks = 0;
  dot1_fn dots1[3][3] = {{tvmq_dot_cb_1x1, tvmq_dot_cb_1x2, tvmq_dot_cb_1x4},
                         {tvmq_dot_cbp_1x1, tvmq_dot_cbp_1x2, tvmq_dot_cbp_1x4},
                         {tvmq_dot_cbc_1x1, tvmq_dot_cbc_1x2, tvmq_dot_cbc_1x4}};
  dot2_fn dots2[3][3] = {{tvmq_dot_cb_2x1, tvmq_dot_cb_2x2, tvmq_dot_cb_2x4},
                         {tvmq_dot_cbp_2x1, tvmq_dot_cbp_2x2, tvmq_dot_cbp_2x4},
                         {tvmq_dot_cbc_2x1, tvmq_dot_cbc_2x2, tvmq_dot_cbc_2x4}};
  row_fn rows[3][3] = {{tvmq_dot_cb_rowx1, tvmq_dot_cb_rowx2, tvmq_dot_cb_rowx4},
                       {tvmq_dot_cbp_rowx1, tvmq_dot_cbp_rowx2, tvmq_dot_cbp_rowx4},
                       {tvmq_dot_cbc_rowx1, tvmq_dot_cbc_rowx2, tvmq_dot_cbc_rowx4}};
  for (long t = 0; t < 9000; ++t, ++checks) {
    int form = (int)((t / 6) % 3);
    int32_t k = 1 + (int32_t)(next() % 100), lanes = 1 << (t % 3), pixels = 1 + (t / 3) % 2;
    int32_t a_stride = k + (int32_t)(next() % 60), w_stride = k + (int32_t)(next() % 28);
    int32_t w_at = (int32_t)(next() % 16);
    if (t % 4 == 0) w_at &= ~1, w_stride &= ~1; /* the aligned fast path, most often */
    pack();
    if (form == 2) { /* as the build's: lane j is channel j (div = w_stride), mostly */
      if (w_stride < k) w_stride += 2; /* lanes apart, as channels are */
      if (t % 8 != 7) w_at %= w_stride - k + 1, w_at &= (t % 4 == 0) ? ~1 : ~0;
      pack_channels((uint16_t)w_stride, (uint16_t)(ELEMENTS / w_stride));
    }
    uint8_t *w = form == 2 ? channels : form ? paired : packed;
    const int8_t *weights = form == 2 ? channel_weight : weight;
    int row = t % 5 == 4; /* a row of `count` pixels */
    int32_t count = row ? 1 + (int32_t)(next() % 3) : pixels;
    for (size_t i = 0; i < sizeof a; ++i) a[i] = activation();
    int32_t acc[12], want[12];
    for (int i = 0; i < 12; ++i) acc[i] = want[i] = (int32_t)(next() % 100000) - 50000;
    for (int p = 0; p < count; ++p)
      for (int j = 0; j < lanes; ++j)
        for (int32_t i = 0; i < k; ++i)
          want[p * 4 + j] += a[p * a_stride + i] * weights[w_at + j * w_stride + i];
    if (row)
      rows[form][t % 3](acc, a, w, w_at, k, w_stride, a_stride, 4, count);
    else if (pixels == 1)
      dots1[form][t % 3](acc, a, w, w_at, k, w_stride);
    else
      dots2[form][t % 3](acc, a, w, w_at, k, w_stride, a_stride, 4);
    for (int i = 0; i < 12; ++i)
      if (acc[i] != want[i] && mismatches++ < 5)
        printf("form %d %ldx%d k=%ld at=%ld stride=%ld acc %d: want %ld, got %ld\n", form,
               (long)count, (int)lanes, (long)k, (long)w_at, (long)w_stride, i, (long)want[i], (long)acc[i]);
  }
  enum { CHANNELS = 8, COLUMNS = 6 };
  static int8_t x[6 * COLUMNS * CHANNELS];
  for (long t = 0; t < 3000; ++t, ++checks) {
    int form = (int)((t / 2) % 3);
    int32_t kh = 1 + (int32_t)(next() % 5), kw = 1 + (int32_t)(next() % 5);
    int32_t w_col = 4 + (int32_t)(next() % 3), w_row = kw * w_col + (int32_t)(next() % 3);
    int32_t w_at = (int32_t)(next() % 8);
    if (t % 2 == 0) w_at &= ~1, w_col &= ~1, w_row &= ~1;
    pack();
    if (form == 2) { /* channels innermost (HWC), w_col of them, mostly */
      if (t % 6 < 4) w_row = kw * w_col;
      pack_channels(t % 12 == 11 ? 2 : 1, (uint16_t)w_col);
    }
    uint8_t *w = form == 2 ? channels : form ? paired : packed;
    const int8_t *weights = form == 2 ? channel_weight : weight;
    int32_t count = t % 5 == 4 ? 1 + (int32_t)(next() % 2) : 0; /* 0: one pixel */
    for (size_t i = 0; i < sizeof x; ++i) x[i] = activation();
    int32_t acc[8], want[8];
    for (int j = 0; j < 8; ++j) acc[j] = want[j] = (int32_t)(next() % 100000) - 50000;
    for (int32_t p = 0; p < (count ? count : 1); ++p)
      for (int32_t r = 0; r < kh; ++r)
        for (int32_t c = 0; c < kw; ++c)
          for (int j = 0; j < 4; ++j)
            want[p * 4 + j] += x[p * CHANNELS + r * COLUMNS * CHANNELS + c * CHANNELS + j] *
                               weights[w_at + r * w_row + c * w_col + j];
    int32_t (*dw[3])(void *, void *, void *, int32_t, int32_t, int32_t, int32_t, int32_t,
                     int32_t, int32_t) = {tvmq_dw_cbx4, tvmq_dw_cbpx4, tvmq_dw_cbcx4};
    int32_t (*dw_row[3])(void *, void *, void *, int32_t, int32_t, int32_t, int32_t, int32_t,
                         int32_t, int32_t, int32_t, int32_t, int32_t) = {
        tvmq_dw_cbx4_row, tvmq_dw_cbpx4_row, tvmq_dw_cbcx4_row};
    if (count)
      dw_row[form](acc, x, w, w_at, kh, kw, COLUMNS * CHANNELS, CHANNELS, w_row, w_col, count,
                   CHANNELS, 4);
    else
      dw[form](acc, x, w, w_at, kh, kw, COLUMNS * CHANNELS, CHANNELS, w_row, w_col);
    for (int j = 0; j < 8; ++j)
      if (acc[j] != want[j] && mismatches++ < 5)
        printf("dw form %d %ldx%ld at=%ld lane %d: want %ld, got %ld\n", form, (long)kh,
               (long)kw, (long)w_at, j, (long)want[j], (long)acc[j]);
  }
  printf("path %s\nchecks %ld\nmismatches %ld\n", TVMQ_CB_PATH, checks, mismatches);
  return mismatches != 0;
}
