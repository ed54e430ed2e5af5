/* The binary protocol (firmware/README.md): COBS frames between 0x00 bytes,
 *   version u8 | command u8 | sequence u16 | session u32 | length u16 |
 *   payload[length] | CRC-32 u32            (all little-endian)
 * A frame that fails any check is answered with a NAK and never acted on. The
 * last reply is kept: a request repeated with the same sequence, session and
 * CRC gets that reply again without running anything twice, so the host may
 * retry every command, RUN included. */
#include <string.h>

#include "harness.h"
#include "tvmq_board.h"

static uint8_t request[TVMQ_ENCODED_MAX];
static uint8_t reply[TVMQ_FRAME_MAX];
static uint8_t sent[TVMQ_ENCODED_MAX + 2]; /* the last reply, encoded, delimiters included */
static size_t sent_length;
static struct {
  bool valid;
  uint16_t sequence;
  uint32_t session, crc;
} last;
static uint32_t session; /* 0 after reset: set by HELLO */

typedef struct {
  uint8_t *data;
  size_t length, capacity;
  bool overflow;
} writer_t;

static void put(writer_t *w, const void *data, size_t n) {
  if (w->overflow || n > w->capacity - w->length) {
    w->overflow = true;
    return;
  }
  memcpy(w->data + w->length, data, n);
  w->length += n;
}

static void put_u8(writer_t *w, uint8_t v) { put(w, &v, 1); }

static void put_le(writer_t *w, uint64_t v, size_t bytes) {
  uint8_t b[8];
  for (size_t i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
  put(w, b, bytes);
}

/* A string as u8 length + bytes, cut at `most` (at most 255). */
static void put_str_cut(writer_t *w, const char *s, size_t most) {
  size_t n = s ? strlen(s) : 0;
  if (n > most) n = most;
  put_u8(w, (uint8_t)n);
  put(w, s, n);
}

static void put_str(writer_t *w, const char *s) { put_str_cut(w, s, 255); }

static uint32_t get_le(const uint8_t *p, size_t bytes) {
  uint32_t v = 0;
  for (size_t i = 0; i < bytes; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

/* Builds a frame in `reply` and encodes it into out (0x00 before and after). */
static size_t encode_frame(uint8_t command, uint16_t sequence, const uint8_t *payload,
                           size_t length, uint8_t *out) {
  reply[0] = TVMQ_PROTOCOL_VERSION;
  reply[1] = command;
  reply[2] = (uint8_t)sequence;
  reply[3] = (uint8_t)(sequence >> 8);
  for (int i = 0; i < 4; i++) reply[4 + i] = (uint8_t)(session >> (8 * i));
  reply[8] = (uint8_t)length;
  reply[9] = (uint8_t)(length >> 8);
  if (payload != reply + TVMQ_HEADER_BYTES) memmove(reply + TVMQ_HEADER_BYTES, payload, length);
  uint32_t crc = tvmq_crc32(reply, TVMQ_HEADER_BYTES + length);
  for (int i = 0; i < 4; i++) reply[TVMQ_HEADER_BYTES + length + i] = (uint8_t)(crc >> (8 * i));
  out[0] = 0;
  size_t n = 1 + tvmq_cobs_encode(reply, TVMQ_HEADER_BYTES + length + TVMQ_CRC_BYTES, out + 1);
  out[n++] = 0;
  return n;
}

/* NAK and FAULT frames go out of their own buffer: the reply cache stays intact. */
#define EVENT_PAYLOAD_MAX 56u
static void send_event(uint8_t command, const uint8_t *payload, size_t length) {
  static uint8_t event[TVMQ_HEADER_BYTES + EVENT_PAYLOAD_MAX + TVMQ_CRC_BYTES + 4];
  tvmq_board_write(event, encode_frame(command, 0, payload, length, event));
}

static void send_nak(void) {
  uint8_t status = ST_BAD_FRAME;
  send_event(EVT_NAK, &status, 1);
}

/* Tensor names are cut to 32 bytes: the host only shows them, and a model with
 * many inputs and outputs of long names (converter paths) must still fit HELLO. */
#define TENSOR_NAME_MAX 32u
static void put_tensor(writer_t *w, const tvmq_tensor_t *t) {
  put_le(w, t->bytes, 4);
  put_str(w, t->dtype);
  put_str_cut(w, t->name, TENSOR_NAME_MAX);
}

static uint8_t hello(const uint8_t *p, size_t n, writer_t *w) {
  if (n != 4) return ST_BAD_LENGTH;
  uint32_t wanted = get_le(p, 4);
  if (wanted == 0) return ST_BAD_ARGUMENT;
  session = wanted;
  const tvmq_model_t *m = &tvmq_model;
  put_u8(w, TVMQ_PROTOCOL_VERSION);
  put_le(w, tvmq_board_tick_hz(), 4);
  put_le(w, TVMQ_MAX_PAYLOAD, 4);
  put_le(w, m->arena_bytes, 4);
  put_str(w, tvmq_board_name);
  put_str(w, m->name);
  put_str(w, m->build_id);
  put_u8(w, (uint8_t)m->num_inputs);
  put_u8(w, (uint8_t)m->num_outputs);
  for (uint32_t i = 0; i < m->num_inputs; i++) put_tensor(w, &m->inputs[i]);
  for (uint32_t i = 0; i < m->num_outputs; i++) put_tensor(w, &m->outputs[i]);
  return w->overflow || m->num_inputs > 255 || m->num_outputs > 255 ? ST_REPLY_TOO_LONG : ST_OK;
}

/* index u8 | offset u32 | data */
static uint8_t write_input(const uint8_t *p, size_t n) {
  if (n < 5) return ST_BAD_LENGTH;
  uint32_t index = p[0], offset = get_le(p + 1, 4);
  size_t length = n - 5;
  if (index >= tvmq_model.num_inputs) return ST_OUT_OF_RANGE;
  const tvmq_tensor_t *t = &tvmq_model.inputs[index];
  if (offset > t->bytes || length > t->bytes - offset) return ST_OUT_OF_RANGE;
  memcpy((uint8_t *)t->data + offset, p + 5, length);
  return ST_OK;
}

static void put_timing(writer_t *w) {
  put_le(w, (uint32_t)tvmq_last_timing.status, 4);
  put_le(w, tvmq_last_timing.runs, 4);
  put_le(w, tvmq_last_timing.total, 8);
  put_le(w, tvmq_last_timing.min, 8);
  put_le(w, tvmq_last_timing.max, 8);
}

/* runs u32 | warmup u32 */
static uint8_t run(const uint8_t *p, size_t n, writer_t *w) {
  if (n != 8) return ST_BAD_LENGTH;
  uint32_t runs = get_le(p, 4), warmup = get_le(p + 4, 4);
  if (runs == 0 || runs > TVMQ_MAX_RUNS || warmup > TVMQ_MAX_RUNS) return ST_BAD_ARGUMENT;
  int32_t status = tvmq_measure(runs, warmup);
  put_timing(w);
  return status == 0 ? ST_OK : ST_MODEL_FAILED;
}

/* index u8 | offset u32 | length u32 */
static uint8_t read_output(const uint8_t *p, size_t n, writer_t *w) {
  if (n != 9) return ST_BAD_LENGTH;
  uint32_t index = p[0], offset = get_le(p + 1, 4), length = get_le(p + 5, 4);
  if (index >= tvmq_model.num_outputs) return ST_OUT_OF_RANGE;
  const tvmq_tensor_t *t = &tvmq_model.outputs[index];
  if (offset > t->bytes || length > t->bytes - offset || length > TVMQ_MAX_PAYLOAD - 1)
    return ST_OUT_OF_RANGE;
  put(w, (const uint8_t *)t->data + offset, length);
  return ST_OK;
}

static uint8_t dispatch(uint8_t command, const uint8_t *p, size_t n, writer_t *w) {
  if (command == CMD_HELLO) return hello(p, n, w);
  if (command != CMD_WRITE_INPUT && command != CMD_RUN && command != CMD_READ_OUTPUT &&
      command != CMD_READ_TIMING && command != CMD_RESET)
    return ST_UNKNOWN_COMMAND;
  if (session == 0 || get_le(request + 4, 4) != session) return ST_NO_SESSION;
  switch (command) {
    case CMD_WRITE_INPUT:
      return write_input(p, n);
    case CMD_RUN:
      return run(p, n, w);
    case CMD_READ_OUTPUT:
      return read_output(p, n, w);
    case CMD_READ_TIMING:
      if (n != 0) return ST_BAD_LENGTH;
      put_timing(w);
      return ST_OK;
    default: /* CMD_RESET */
      return n == 0 ? ST_OK : ST_BAD_LENGTH;
  }
}

void tvmq_binary_chunk(const uint8_t *chunk, size_t n, bool overflowed) {
  if (n == 0 && !overflowed) return; /* back-to-back delimiters */
  long decoded = overflowed ? -1 : tvmq_cobs_decode(chunk, n, request);
  if (decoded < (long)(TVMQ_HEADER_BYTES + TVMQ_CRC_BYTES)) {
    send_nak();
    return;
  }
  size_t length = get_le(request + 8, 2);
  size_t body = TVMQ_HEADER_BYTES + length;
  if (length > TVMQ_MAX_PAYLOAD || (size_t)decoded != body + TVMQ_CRC_BYTES ||
      get_le(request + body, 4) != tvmq_crc32(request, body)) {
    send_nak();
    return;
  }
  uint8_t command = request[1];
  uint16_t sequence = (uint16_t)get_le(request + 2, 2);
  uint32_t crc = get_le(request + body, 4);
  if (request[0] != TVMQ_PROTOCOL_VERSION) {
    uint8_t status = ST_BAD_VERSION;
    sent_length = encode_frame(command | CMD_REPLY, sequence, &status, 1, sent);
    last.valid = false;
    tvmq_board_write(sent, sent_length);
    return;
  }
  uint32_t from = get_le(request + 4, 4);
  if (last.valid && last.sequence == sequence && last.session == from && last.crc == crc) {
    tvmq_board_write(sent, sent_length); /* a retry: the same answer, nothing re-run */
    return;
  }
  /* The reply payload is built in place after its header: status, then data. */
  writer_t w = {reply + TVMQ_HEADER_BYTES + 1, 0, TVMQ_MAX_PAYLOAD - 1, false};
  uint8_t status = dispatch(command, request + TVMQ_HEADER_BYTES, length, &w);
  if (status != ST_OK && status != ST_MODEL_FAILED) w.length = 0;
  reply[TVMQ_HEADER_BYTES] = status;
  sent_length = encode_frame(command | CMD_REPLY, sequence, reply + TVMQ_HEADER_BYTES,
                             w.length + 1, sent);
  tvmq_board_write(sent, sent_length);
  last.valid = true;
  last.sequence = sequence;
  last.session = from;
  last.crc = crc;
  if (command == CMD_RESET && status == ST_OK) tvmq_board_reset();
}

/* An unsolicited FAULT frame: pc u32 | lr u32 | cfsr u32 | address u32 | what (<= 32). */
void tvmq_binary_fault(const char *what, uint32_t pc, uint32_t lr, uint32_t cfsr,
                       uint32_t address) {
  uint8_t payload[EVENT_PAYLOAD_MAX];
  writer_t w = {payload, 0, sizeof payload, false};
  put_le(&w, pc, 4);
  put_le(&w, lr, 4);
  put_le(&w, cfsr, 4);
  put_le(&w, address, 4);
  size_t n = strlen(what);
  put_u8(&w, (uint8_t)(n > 32 ? 32 : n));
  put(&w, what, n > 32 ? 32 : n);
  send_event(EVT_FAULT, payload, w.length);
}
