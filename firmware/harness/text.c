/* The MLPerf Tiny / EEMBC runner's text protocol: '%'-terminated commands
 *   name%  profile%  timestamp%  db load N%  db HEX%  infer N W%  results%
 * answered with the runner's m-... lines and m-ready. `db` bytes fill the model
 * inputs one after another; `results` prints output 0. */
#include <string.h>

#include "harness.h"
#include "tvmq_board.h"

static uint32_t db_expected, db_loaded;

static uint32_t input_bytes(void) {
  uint32_t total = 0;
  for (uint32_t i = 0; i < tvmq_model.num_inputs; i++) total += tvmq_model.inputs[i].bytes;
  return total;
}

static void db_store(uint32_t at, uint8_t value) {
  for (uint32_t i = 0; i < tvmq_model.num_inputs; i++) {
    const tvmq_tensor_t *t = &tvmq_model.inputs[i];
    if (at < t->bytes) {
      ((uint8_t *)t->data)[at] = value;
      return;
    }
    at -= t->bytes;
  }
}

/* A decimal u32; false unless the whole token is one. */
static bool parse_u32(const char *s, uint32_t *value) {
  uint64_t v = 0;
  if (!s || !*s) return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    v = v * 10u + (uint64_t)(*s - '0');
    if (v > 0xFFFFFFFFu) return false;
  }
  *value = (uint32_t)v;
  return true;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void error(const char *what, const char *detail) {
  tvmq_put_str("e-[");
  tvmq_put_str(what);
  tvmq_put_str(detail);
  tvmq_put_str("]\r\n");
}

static void timestamp(void) {
  tvmq_board_timestamp();
  uint64_t ticks = tvmq_board_ticks(), hz = tvmq_board_tick_hz();
  tvmq_put_str("m-lap-us-");
  tvmq_put_u64(ticks / hz * 1000000u + ticks % hz * 1000000u / hz);
  tvmq_put_str("\r\n");
}

static void db(char *arguments) {
  if (strncmp(arguments, "load ", 5) == 0) {
    uint32_t n;
    if (!parse_u32(arguments + 5, &n) || n == 0 || n > input_bytes()) {
      error("db load: expected 1 to the model's input bytes, got ", arguments + 5);
      return;
    }
    db_expected = n;
    db_loaded = 0;
    tvmq_put_str("m-[Expecting ");
    tvmq_put_u64(n);
    tvmq_put_str(" bytes]\r\n");
    return;
  }
  size_t n = strlen(arguments);
  if (n % 2 || n / 2 > db_expected - db_loaded) {
    error("db: odd hex length or more bytes than loaded", "");
    return;
  }
  for (size_t i = 0; i < n; i += 2) {
    int high = hex_value(arguments[i]), low = hex_value(arguments[i + 1]);
    if (high < 0 || low < 0) {
      error("db: not hex: ", arguments);
      return;
    }
  }
  for (size_t i = 0; i < n; i += 2)
    db_store(db_loaded++, (uint8_t)(hex_value(arguments[i]) << 4 | hex_value(arguments[i + 1])));
  if (db_loaded == db_expected) tvmq_put_str("m-load-done\r\n");
}

static void put_f32(float value) {
  if (value != value) {
    tvmq_put_str("nan");
    return;
  }
  if (value < 0) {
    tvmq_put_str("-");
    value = -value;
  }
  if (value > 1.8e19f) {
    tvmq_put_str("inf");
    return;
  }
  uint64_t milli = (uint64_t)((double)value * 1000.0 + 0.5);
  char decimals[5] = {'.', (char)('0' + milli / 100 % 10), (char)('0' + milli / 10 % 10),
                      (char)('0' + milli % 10), 0};
  tvmq_put_u64(milli / 1000u);
  tvmq_put_str(decimals);
}

static void results(void) {
  if (tvmq_model.num_outputs == 0) {
    tvmq_put_str("m-results-[]\r\n");
    return;
  }
  const tvmq_tensor_t *t = &tvmq_model.outputs[0];
  const char *d = t->dtype;
  tvmq_put_str("m-results-[");
  size_t size = strcmp(d, "float32") == 0 || strcmp(d, "int32") == 0 ? 4
                : strcmp(d, "int16") == 0                           ? 2
                                                                    : 1;
  for (size_t i = 0; i < t->bytes / size; i++) {
    const uint8_t *p = (const uint8_t *)t->data + i * size;
    if (i) tvmq_put_str(",");
    if (strcmp(d, "float32") == 0) {
      float f;
      memcpy(&f, p, 4);
      put_f32(f);
    } else if (strcmp(d, "int32") == 0) {
      int32_t v;
      memcpy(&v, p, 4);
      tvmq_put_i64(v);
    } else if (strcmp(d, "int16") == 0) {
      int16_t v;
      memcpy(&v, p, 2);
      tvmq_put_i64(v);
    } else if (strcmp(d, "uint8") == 0) {
      tvmq_put_u64(*p);
    } else {
      tvmq_put_i64((int8_t)*p);
    }
  }
  tvmq_put_str("]\r\n");
}

static void infer(char *arguments) {
  char *space = strchr(arguments, ' ');
  uint32_t runs, warmup = 0;
  if (space) *space = 0;
  if (!parse_u32(arguments, &runs) || (space && !parse_u32(space + 1, &warmup)) || runs == 0 ||
      runs > TVMQ_MAX_RUNS || warmup > TVMQ_MAX_RUNS) {
    error("infer: expected 'infer N W' with 1 <= N, W <= 1000000", "");
    return;
  }
  tvmq_put_str("m-warmup-start-");
  tvmq_put_u64(warmup);
  tvmq_put_str("\r\n");
  for (uint32_t i = 0; i < warmup; i++) tvmq_model.run();
  tvmq_put_str("m-warmup-done\r\nm-infer-start-");
  tvmq_put_u64(runs);
  tvmq_put_str("\r\n");
  timestamp();
  int32_t status = tvmq_measure(runs, 0);
  timestamp();
  tvmq_put_str("m-infer-done\r\n");
  if (status != 0) {
    tvmq_put_str("e-[model failed with status ");
    tvmq_put_i64(status);
    tvmq_put_str("]\r\n");
    return;
  }
  results();
}

void tvmq_text_boot(void) {
  tvmq_put_str("m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n");
}

void tvmq_text_command(char *command, size_t n) {
  command[n] = 0;
  if (strcmp(command, "name") == 0) {
    tvmq_put_str("m-name-dut-[tvmq ");
    tvmq_put_str(tvmq_board_name);
    tvmq_put_str("]\r\n");
  } else if (strcmp(command, "profile") == 0) {
    tvmq_put_str("m-profile-[tvmq]\r\nm-model-[");
    tvmq_put_str(tvmq_model.name);
    tvmq_put_str("]\r\n");
  } else if (strcmp(command, "timestamp") == 0) {
    timestamp();
  } else if (strncmp(command, "db ", 3) == 0) {
    db(command + 3);
  } else if (strncmp(command, "infer ", 6) == 0) {
    infer(command + 6);
  } else if (strcmp(command, "results") == 0) {
    results();
  } else {
    error("Unknown command: ", command);
  }
  tvmq_put_str("m-ready\r\n");
}
