/* The harness: reads the host link byte by byte and hands complete commands to
 * the binary or the EEMBC text protocol. It starts in text mode (what the
 * MLPerf Tiny runner expects) and switches to binary on the first 0x00 byte,
 * which the text protocol never sends; a reset returns it to text mode. */
#include <string.h>

#include "harness.h"
#include "tvmq_board.h"

tvmq_timing_t tvmq_last_timing;
static bool binary_mode;

int32_t tvmq_measure(uint32_t runs, uint32_t warmup) {
  tvmq_timing_t t = {0, runs, 0, UINT64_MAX, 0};
  for (uint32_t i = 0; i < warmup && t.status == 0; i++) t.status = tvmq_model.run();
  tvmq_board_timestamp();
  tvmq_board_tick_align();
  uint64_t start = tvmq_board_ticks(), previous = start;
  for (uint32_t i = 0; i < runs && t.status == 0; i++) {
    t.status = tvmq_model.run();
    uint64_t now = tvmq_board_ticks(), lap = now - previous;
    previous = now;
    if (lap < t.min) t.min = lap;
    if (lap > t.max) t.max = lap;
  }
  t.total = previous - start;
  tvmq_board_timestamp();
  if (t.status != 0) t.min = t.max = t.total = 0;
  tvmq_last_timing = t;
  return t.status;
}

void tvmq_put_str(const char *s) { tvmq_board_write((const uint8_t *)s, strlen(s)); }

void tvmq_put_u64(uint64_t value) {
  char digits[21];
  size_t at = sizeof digits;
  digits[--at] = 0;
  do {
    digits[--at] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value);
  tvmq_put_str(digits + at);
}

void tvmq_put_i64(int64_t value) {
  if (value < 0) {
    tvmq_put_str("-");
    tvmq_put_u64(0u - (uint64_t)value);
  } else {
    tvmq_put_u64((uint64_t)value);
  }
}

void tvmq_put_hex32(uint32_t value) {
  char hex[11] = "0x";
  for (int i = 0; i < 8; i++) hex[2 + i] = "0123456789abcdef"[(value >> (28 - 4 * i)) & 15u];
  hex[10] = 0;
  tvmq_put_str(hex);
}

void tvmq_harness_fault(const char *what, uint32_t pc, uint32_t lr, uint32_t cfsr,
                        uint32_t address) {
  if (binary_mode) {
    tvmq_binary_fault(what, pc, lr, cfsr, address);
  } else {
    tvmq_put_str("e-[fault ");
    tvmq_put_str(what);
    tvmq_put_str(" pc=");
    tvmq_put_hex32(pc);
    tvmq_put_str(" lr=");
    tvmq_put_hex32(lr);
    tvmq_put_str(" cfsr=");
    tvmq_put_hex32(cfsr);
    tvmq_put_str(" address=");
    tvmq_put_hex32(address);
    tvmq_put_str("]\r\n");
  }
  tvmq_board_exit(3);
}

/* A text command longer than this is answered with an error and dropped. */
#define TEXT_MAX 1040u

int main(void) {
  static uint8_t chunk[TVMQ_ENCODED_MAX];
  static char text[TEXT_MAX];
  size_t length = 0;
  bool overflowed = false;
  tvmq_board_init();
  tvmq_text_boot();
  for (;;) {
    int c = tvmq_board_read_byte();
    if (c < 0) return 0;
    if (c == 0) {
      if (binary_mode) tvmq_binary_chunk(chunk, length, overflowed);
      binary_mode = true;
      length = 0;
      overflowed = false;
    } else if (binary_mode) {
      if (length < sizeof chunk)
        chunk[length++] = (uint8_t)c;
      else
        overflowed = true;
    } else if (c == '%') {
      if (overflowed)
        tvmq_put_str("e-[command too long]\r\n");
      else
        tvmq_text_command(text, length);
      length = 0;
      overflowed = false;
    } else if (c != '\r' && c != '\n') {
      if (length < sizeof text - 1)
        text[length++] = (char)c;
      else
        overflowed = true;
    }
  }
}
