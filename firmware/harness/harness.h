/* Internal to the harness: the frame codec, the two protocols and output helpers. */
#ifndef TVMQ_HARNESS_H
#define TVMQ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tvmq_model.h"

#define TVMQ_PROTOCOL_VERSION 1u
#define TVMQ_MAX_PAYLOAD 1024u
#define TVMQ_HEADER_BYTES 10u /* version, command, sequence, session, length */
#define TVMQ_CRC_BYTES 4u
#define TVMQ_FRAME_MAX (TVMQ_HEADER_BYTES + TVMQ_MAX_PAYLOAD + TVMQ_CRC_BYTES)
#define TVMQ_ENCODED_MAX (TVMQ_FRAME_MAX + TVMQ_FRAME_MAX / 254u + 2u)
#define TVMQ_MAX_RUNS 1000000u

enum {
  CMD_HELLO = 0x01,
  CMD_WRITE_INPUT = 0x02,
  CMD_RUN = 0x03,
  CMD_READ_OUTPUT = 0x04,
  CMD_READ_TIMING = 0x05,
  CMD_RESET = 0x06,
  CMD_REPLY = 0x80, /* a reply's command is the request's | 0x80 */
  EVT_FAULT = 0xFD,
  EVT_NAK = 0xFF,
};

enum {
  ST_OK = 0,
  ST_BAD_FRAME = 1,
  ST_BAD_VERSION = 2,
  ST_UNKNOWN_COMMAND = 3,
  ST_BAD_LENGTH = 4,
  ST_OUT_OF_RANGE = 5,
  ST_BAD_ARGUMENT = 6,
  ST_NO_SESSION = 7,
  ST_MODEL_FAILED = 8,
  ST_REPLY_TOO_LONG = 9,
};

/* The timing of the last RUN (or `infer`), in board ticks. */
typedef struct {
  int32_t status;
  uint32_t runs;
  uint64_t total, min, max;
} tvmq_timing_t;

extern tvmq_timing_t tvmq_last_timing;

/* Runs W untimed then N timed inferences; 0 or the model's non-zero status. */
int32_t tvmq_measure(uint32_t runs, uint32_t warmup);

/* Codec, shared with the host side (tvmq/hil/protocol.py mirrors it). */
size_t tvmq_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst);
long tvmq_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst);
uint32_t tvmq_crc32(const uint8_t *data, size_t n);

/* Binary protocol: one complete byte chunk between two 0x00 delimiters. */
void tvmq_binary_chunk(const uint8_t *chunk, size_t n, bool overflowed);
void tvmq_binary_fault(const char *what, uint32_t pc, uint32_t lr, uint32_t cfsr,
                       uint32_t address);

/* EEMBC text protocol: one command without its '%'. */
void tvmq_text_boot(void);
void tvmq_text_command(char *command, size_t n);

/* Output helpers for the text protocol (no printf: it would bring in malloc). */
void tvmq_put_str(const char *s);
void tvmq_put_u64(uint64_t value);
void tvmq_put_i64(int64_t value);
void tvmq_put_hex32(uint32_t value);

#endif /* TVMQ_HARNESS_H */
