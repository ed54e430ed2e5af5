/* int8 x codebook dot-product micro-kernels: the lookup forms of tvmq_s4.h's.
 *
 * A codebook weight tensor (tvmq.quantize.codebook) is one table of 16 int8
 * centroids followed by the 4-bit index of every element, packed two per byte in
 * CMSIS-NN's order (element e in the low nibble of byte 16 + e / 2 when e is even,
 * the high one when it is odd). Weight W(e) = table[index(e)], an ordinary int8, so
 * the sums are those of the int8 kernels over the model's (clustered) int8 weights.
 * `w` points at the table; positions and strides count elements, as in tvmq_s4.h:
 *
 * tvmq_dot_cb_1xN(acc, a, w, w_at, k, w_stride):
 *   acc[j] += sum_i a[i] * W(w_at + j * w_stride + i), j < N, i < k
 * tvmq_dot_cb_2xN(acc, a, w, w_at, k, w_stride, a_stride, acc_stride): two input runs
 *   a_stride bytes apart, into acc[j] and acc[acc_stride + j].
 * tvmq_dw_cbx4(acc, x, w, w_at, kh, kw, x_row, x_col, w_row, w_col): a depthwise
 *   window for four channels (x strides in bytes, w strides in elements).
 *
 * Each index is looked up in the table where it is used (flash), never expanded into
 * a buffer. On the DSP extension each index byte gives two looked-up weights, paired
 * into int16 lanes (PKHBT) that meet the activations, paired once per step for the
 * N channels, in SMLAD. Elsewhere, and for odd element positions, plain C.
 *
 * The pair form (tvmq_dot_cbp_*, tvmq_dw_cbpx4), for large layers: the 16-byte table
 * is followed by 256 int32 words, word v holding (W of v's low nibble, W of its high
 * nibble) as the int16 lanes SMLAD takes, then the indices (from byte 1040). One
 * index byte is then one load of a ready pair: 1 KiB more flash per layer for about
 * the int8 kernels' instruction count.
 *
 * The per-channel form (tvmq_dot_cbc_*, tvmq_dw_cbcx4), one table per output
 * channel: a 4-byte header (uint16 `div`, uint16 `count`), then `count` 16-byte
 * tables, then the indices (from byte 4 + 16 * count). Element e belongs to channel
 * (e / div) % count (div: the elements after the channel axis). A dot-product lane
 * (one output channel) or a depthwise lane looks its table up once per call when its
 * elements share a channel, else element by element.
 */
#ifndef TVMQ_CB_H
#define TVMQ_CB_H

#include <stdint.h>
#include <string.h>

#define TVMQ_CB_TABLE 16            /* bytes of centroids before the packed indices */
#define TVMQ_CBP_INDICES (16 + 1024) /* ... in the pair form: after the pair table */

/* Where a codebook tensor's tables and indices are, and which table an element
   takes: channel (e / div) % count, count 1 for one table per layer. */
typedef struct {
  const int8_t *tables;
  const uint8_t *indices;
  int32_t div, count;
} tvmq_cb_view;

/* One table at w, indices from byte `at`. */
static inline tvmq_cb_view tvmq_cb_layer(const void *w, int32_t at) {
  tvmq_cb_view v = {(const int8_t *)w, (const uint8_t *)w + at, 1, 1};
  return v;
}

/* The per-channel form: header, `count` tables, indices. */
static inline tvmq_cb_view tvmq_cb_channels(const void *w) {
  uint16_t header[2];
  memcpy(header, w, 4);
  tvmq_cb_view v = {(const int8_t *)w + 4, (const uint8_t *)w + 4 + 16 * header[1],
                    header[0], header[1]};
  return v;
}

static inline const int8_t *tvmq_cb_table(tvmq_cb_view v, int32_t e) {
  return v.count == 1 ? v.tables : v.tables + 16 * ((uint32_t)e / v.div % v.count);
}

/* Whether elements [e, e + n) take one table. */
static inline int tvmq_cb_one_table(tvmq_cb_view v, int32_t e, int32_t n) {
  return v.count == 1 || (uint32_t)e / v.div == (uint32_t)(e + n - 1) / v.div;
}

static inline int32_t tvmq_cb_index(tvmq_cb_view v, int32_t e) {
  uint8_t byte = v.indices[e >> 1];
  return (e & 1) ? byte >> 4 : byte & 15;
}

/* Weight element e. */
static inline int32_t tvmq_cb_at(tvmq_cb_view v, int32_t e) {
  return tvmq_cb_table(v, e)[tvmq_cb_index(v, e)];
}

static inline void tvmq_cb_dot_plain(int32_t *acc, const int8_t *a, tvmq_cb_view v, int32_t w_at,
                                     int32_t k, int32_t w_stride, int32_t n) {
  for (int32_t j = 0; j < n; ++j) {
    int32_t sum = acc[j], e = w_at + j * w_stride;
    if (k > 0 && tvmq_cb_one_table(v, e, k)) {
      const int8_t *t = tvmq_cb_table(v, e);
      for (int32_t i = 0; i < k; ++i) sum += (int32_t)a[i] * t[tvmq_cb_index(v, e + i)];
    } else {
      for (int32_t i = 0; i < k; ++i) sum += (int32_t)a[i] * tvmq_cb_at(v, e + i);
    }
    acc[j] = sum;
  }
}

static inline void tvmq_cb_dw_plain(int32_t *acc, const int8_t *x, tvmq_cb_view v, int32_t w_at,
                                    int32_t kh, int32_t kw, int32_t x_row, int32_t x_col,
                                    int32_t w_row, int32_t w_col) {
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c)
      for (int j = 0; j < 4; ++j)
        acc[j] += (int32_t)x[r * x_row + c * x_col + j] *
                  tvmq_cb_at(v, w_at + r * w_row + c * w_col + j);
}

/* Four channels at an even position: one halfword of indices, no per-element parity,
   each lane's table found once (every window position of a lane is one channel when
   the table is per layer, or the channels are innermost and the window's strides
   whole multiples of their count). */
static inline void tvmq_cb_dw(int32_t *acc, const int8_t *x, tvmq_cb_view v, int32_t w_at,
                              int32_t kh, int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                              int32_t w_col) {
  int lanes_fixed = v.count == 1 || (v.div == 1 && w_row % v.count == 0 && w_col % v.count == 0);
  if (((w_at | w_row | w_col) & 1) || !lanes_fixed) {
    tvmq_cb_dw_plain(acc, x, v, w_at, kh, kw, x_row, x_col, w_row, w_col);
    return;
  }
  const int8_t *t0 = tvmq_cb_table(v, w_at), *t1 = tvmq_cb_table(v, w_at + 1);
  const int8_t *t2 = tvmq_cb_table(v, w_at + 2), *t3 = tvmq_cb_table(v, w_at + 3);
  int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
  for (int32_t r = 0; r < kh; ++r)
    for (int32_t c = 0; c < kw; ++c) {
      const uint8_t *q = v.indices + ((w_at + r * w_row + c * w_col) >> 1);
      const int8_t *xs = x + r * x_row + c * x_col;
      uint32_t lo = q[0], hi = q[1];
      s0 += (int32_t)xs[0] * t0[lo & 15];
      s1 += (int32_t)xs[1] * t1[lo >> 4];
      s2 += (int32_t)xs[2] * t2[hi & 15];
      s3 += (int32_t)xs[3] * t3[hi >> 4];
    }
  acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
}

static inline int32_t tvmq_dw_cbx4(void *acc, void *x, void *w, int32_t w_at, int32_t kh,
                                   int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                                   int32_t w_col) {
  tvmq_cb_dw(acc, x, tvmq_cb_layer(w, TVMQ_CB_TABLE), w_at, kh, kw, x_row, x_col, w_row, w_col);
  return 0;
}

static inline int32_t tvmq_dw_cbpx4(void *acc, void *x, void *w, int32_t w_at, int32_t kh,
                                    int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                                    int32_t w_col) {
  tvmq_cb_dw(acc, x, tvmq_cb_layer(w, TVMQ_CBP_INDICES), w_at, kh, kw, x_row, x_col, w_row,
             w_col);
  return 0;
}

static inline int32_t tvmq_dw_cbcx4(void *acc, void *x, void *w, int32_t w_at, int32_t kh,
                                    int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row,
                                    int32_t w_col) {
  tvmq_cb_dw(acc, x, tvmq_cb_channels(w), w_at, kh, kw, x_row, x_col, w_row, w_col);
  return 0;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__aarch64__)
#include <arm_acle.h>

static inline int32_t tvmq_cb_load32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4); /* one (unaligned) LDR */
  return v;
}

/* (low half of b, low half of t): PKHBT (ACLE has no intrinsic for it). */
static inline int32_t tvmq_cb_pkhbt(int32_t b, int32_t t) {
  int32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(b), "r"(t));
  return r;
}
static inline int32_t tvmq_cb_pkhtb(int32_t t, int32_t b) { /* (high of b, high of t) */
  int32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(t), "r"(b));
  return r;
}
static inline int16x2_t tvmq_cb_sxtb16_ror8(int32_t x) {
  int16x2_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

/* Four activations as the int16 pairs (a0, a1) and (a2, a3): the order of two
   index bytes' nibbles. */
static inline void tvmq_cb_pair_a(const int8_t *a, int32_t *p01, int32_t *p23) {
  int32_t v = tvmq_cb_load32(a);
  int32_t even = __sxtb16(v), odd = tvmq_cb_sxtb16_ror8(v);
  *p01 = tvmq_cb_pkhbt(even, odd), *p23 = tvmq_cb_pkhtb(odd, even);
}

/* The int16 pair of weights of index byte v of lane table `t`: two lookups packed
   by PKHBT, or one load from the pair table after the 16 centroids. */
#define TVMQ_CB_PAIR(t, v) tvmq_cb_pkhbt((t)[(v) & 15], (t)[(v) >> 4])
#define TVMQ_CBP_PAIR(t, v) (((const int32_t *)((t) + TVMQ_CB_TABLE))[v])

/* Whether the n lanes of a dot product (lane j: k elements from w_at + j * w_stride)
   take the tables *t0 + 16 * j * (count > 1): always for one table per layer; for
   tables per channel, when the lanes are consecutive whole channels' runs (lane j
   one output channel, as the build lays weights out), else element by element. */
static inline int tvmq_cb_lanes(tvmq_cb_view v, int32_t w_at, int32_t k, int32_t w_stride,
                                int32_t n, const int8_t **t0) {
  if (v.count == 1) {
    *t0 = v.tables;
    return 1;
  }
  uint32_t channel = (uint32_t)w_at / v.div;
  *t0 = v.tables + 16 * channel;
  return w_stride == v.div && w_at - (int32_t)channel * v.div + k <= v.div &&
         channel + n <= (uint32_t)v.count;
}

/* NAME_1xN and NAME_2xN over the tensor VIEW(w) (a tvmq_cb_view), PAIR(t, v) the
   weight pair of index byte v from lane table t, STEP the bytes from one lane's
   table to the next (0: one table). Four weights (two index bytes) per step, as
   tvmq_dot.h's int8 kernels. */
#define TVMQ_CB_DOT_DEFINE(NAME, N, VIEW, PAIR, STEP)                                     \
  static inline int32_t NAME##_1x##N(void *acc_, void *a_, void *w_, int32_t w_at,        \
                                     int32_t k, int32_t w_stride) {                       \
    int32_t *acc = acc_;                                                                  \
    const int8_t *a = a_;                                                                 \
    tvmq_cb_view v = VIEW(w_);                                                            \
    const int8_t *t;                                                                      \
    if (((w_at | w_stride) & 1) || !tvmq_cb_lanes(v, w_at, k, w_stride, N, &t)) {         \
      tvmq_cb_dot_plain(acc, a, v, w_at, k, w_stride, N);                                 \
      return 0;                                                                           \
    }                                                                                     \
    const uint8_t *row = v.indices + (w_at >> 1);                                         \
    int32_t sum[N];                                                                       \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) sum[j] = acc[j];                  \
    int32_t i = 0;                                                                        \
    for (; i + 4 <= k; i += 4, row += 2) {                                                \
      int32_t p01, p23;                                                                   \
      tvmq_cb_pair_a(a + i, &p01, &p23);                                                  \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                               \
        const uint8_t *q = row + j * (w_stride >> 1);                                     \
        sum[j] = __smlad(p01, PAIR(t + j * STEP, q[0]), sum[j]);                          \
        sum[j] = __smlad(p23, PAIR(t + j * STEP, q[1]), sum[j]);                          \
      }                                                                                   \
    }                                                                                     \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] = sum[j];                  \
    if (i < k) tvmq_cb_dot_plain(acc, a + i, v, w_at + i, k - i, w_stride, N);            \
    return 0;                                                                             \
  }                                                                                       \
  static inline int32_t NAME##_2x##N(void *acc_, void *a_, void *w_, int32_t w_at,        \
                                     int32_t k, int32_t w_stride, int32_t a_stride,       \
                                     int32_t acc_stride) {                                \
    int32_t *acc = acc_;                                                                  \
    const int8_t *a0 = a_, *a1 = (const int8_t *)a_ + a_stride;                           \
    tvmq_cb_view v = VIEW(w_);                                                            \
    const int8_t *t;                                                                      \
    if (((w_at | w_stride) & 1) || !tvmq_cb_lanes(v, w_at, k, w_stride, N, &t)) {         \
      tvmq_cb_dot_plain(acc, a0, v, w_at, k, w_stride, N);                                \
      tvmq_cb_dot_plain(acc + acc_stride, a1, v, w_at, k, w_stride, N);                   \
      return 0;                                                                           \
    }                                                                                     \
    const uint8_t *row = v.indices + (w_at >> 1);                                         \
    int32_t s0[N], s1[N];                                                                 \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                                 \
      s0[j] = acc[j], s1[j] = acc[acc_stride + j];                                        \
    }                                                                                     \
    int32_t i = 0;                                                                        \
    for (; i + 4 <= k; i += 4, row += 2) {                                                \
      int32_t x01, x23, y01, y23;                                                         \
      tvmq_cb_pair_a(a0 + i, &x01, &x23);                                                 \
      tvmq_cb_pair_a(a1 + i, &y01, &y23);                                                 \
      _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) {                               \
        const uint8_t *q = row + j * (w_stride >> 1);                                     \
        int32_t w01 = PAIR(t + j * STEP, q[0]), w23 = PAIR(t + j * STEP, q[1]);           \
        s0[j] = __smlad(x23, w23, __smlad(x01, w01, s0[j]));                              \
        s1[j] = __smlad(y23, w23, __smlad(y01, w01, s1[j]));                              \
      }                                                                                   \
    }                                                                                     \
    _Pragma("GCC unroll 4") for (int j = 0; j < N; ++j) acc[j] = s0[j],                   \
                                                        acc[acc_stride + j] = s1[j];      \
    if (i < k) {                                                                          \
      tvmq_cb_dot_plain(acc, a0 + i, v, w_at + i, k - i, w_stride, N);                    \
      tvmq_cb_dot_plain(acc + acc_stride, a1 + i, v, w_at + i, k - i, w_stride, N);       \
    }                                                                                     \
    return 0;                                                                             \
  }

#define TVMQ_CB_PATH "dsp"

#else /* plain C */

#define TVMQ_CB_DOT_DEFINE(NAME, N, VIEW, PAIR, STEP)                                     \
  static inline int32_t NAME##_1x##N(void *acc, void *a, void *w, int32_t w_at, int32_t k, \
                                     int32_t w_stride) {                                  \
    tvmq_cb_dot_plain(acc, a, VIEW(w), w_at, k, w_stride, N);                             \
    return 0;                                                                             \
  }                                                                                       \
  static inline int32_t NAME##_2x##N(void *acc, void *a, void *w, int32_t w_at, int32_t k, \
                                     int32_t w_stride, int32_t a_stride,                  \
                                     int32_t acc_stride) {                                \
    tvmq_cb_dot_plain(acc, a, VIEW(w), w_at, k, w_stride, N);                             \
    tvmq_cb_dot_plain((int32_t *)acc + acc_stride, (const int8_t *)a + a_stride, VIEW(w), \
                      w_at, k, w_stride, N);                                              \
    return 0;                                                                             \
  }

#define TVMQ_CB_PATH "plain"

#endif

#define TVMQ_CB_VIEW(w) tvmq_cb_layer(w, TVMQ_CB_TABLE)
#define TVMQ_CBP_VIEW(w) tvmq_cb_layer(w, TVMQ_CBP_INDICES)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cb, 1, TVMQ_CB_VIEW, TVMQ_CB_PAIR, 0)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cb, 2, TVMQ_CB_VIEW, TVMQ_CB_PAIR, 0)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cb, 4, TVMQ_CB_VIEW, TVMQ_CB_PAIR, 0)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cbp, 1, TVMQ_CBP_VIEW, TVMQ_CBP_PAIR, 0)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cbp, 2, TVMQ_CBP_VIEW, TVMQ_CBP_PAIR, 0)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cbp, 4, TVMQ_CBP_VIEW, TVMQ_CBP_PAIR, 0)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cbc, 1, tvmq_cb_channels, TVMQ_CB_PAIR, 16)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cbc, 2, tvmq_cb_channels, TVMQ_CB_PAIR, 16)
TVMQ_CB_DOT_DEFINE(tvmq_dot_cbc, 4, tvmq_cb_channels, TVMQ_CB_PAIR, 16)

/* The row forms of tvmq_dot.h's rows (tvmq_dot_s8_rowxN, tvmq_dw_s8x4_row), as tvmq_s4.h's:
   pixel pairs, then a one-pixel tail. */
#define TVMQ_CB_ROW_DEFINE(NAME, N)                                                       \
  static inline int32_t NAME##_rowx##N(void *acc_, void *a_, void *w, int32_t w_at,       \
                                       int32_t k, int32_t w_stride, int32_t a_stride,     \
                                       int32_t acc_stride, int32_t count) {               \
    int32_t *acc = acc_;                                                                  \
    int8_t *a = a_;                                                                       \
    int32_t p = 0;                                                                        \
    for (; p + 2 <= count; p += 2)                                                        \
      NAME##_2x##N(acc + p * acc_stride, a + p * a_stride, w, w_at, k, w_stride, a_stride, \
                   acc_stride);                                                           \
    if (p < count) NAME##_1x##N(acc + p * acc_stride, a + p * a_stride, w, w_at, k, w_stride); \
    return 0;                                                                             \
  }
TVMQ_CB_ROW_DEFINE(tvmq_dot_cb, 1)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cb, 2)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cb, 4)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cbp, 1)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cbp, 2)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cbp, 4)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cbc, 1)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cbc, 2)
TVMQ_CB_ROW_DEFINE(tvmq_dot_cbc, 4)

#define TVMQ_CB_DW_ROW_DEFINE(NAME)                                                        \
  static inline int32_t NAME##_row(void *acc_, void *x_, void *w, int32_t w_at, int32_t kh, \
                                   int32_t kw, int32_t x_row, int32_t x_col, int32_t w_row, \
                                   int32_t w_col, int32_t count, int32_t x_pixel,          \
                                   int32_t acc_pixel) {                                    \
    int32_t *acc = acc_;                                                                   \
    int8_t *x = x_;                                                                        \
    for (int32_t p = 0; p < count; ++p)                                                    \
      NAME(acc + p * acc_pixel, x + p * x_pixel, w, w_at, kh, kw, x_row, x_col, w_row, w_col); \
    return 0;                                                                              \
  }
TVMQ_CB_DW_ROW_DEFINE(tvmq_dw_cbx4)
TVMQ_CB_DW_ROW_DEFINE(tvmq_dw_cbpx4)
TVMQ_CB_DW_ROW_DEFINE(tvmq_dw_cbcx4)

#endif /* TVMQ_CB_H */
