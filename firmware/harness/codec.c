/* COBS framing and CRC-32, byte for byte the same as tvmq/hil/protocol.py. */
#include "harness.h"

size_t tvmq_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst) {
  size_t code_at = 0, out = 1;
  uint8_t code = 1;
  for (size_t i = 0; i < n; i++) {
    if (src[i] == 0) {
      dst[code_at] = code;
      code_at = out++;
      code = 1;
      continue;
    }
    dst[out++] = src[i];
    if (++code == 0xFF) {
      dst[code_at] = code;
      code_at = out++;
      code = 1;
    }
  }
  dst[code_at] = code;
  return out;
}

/* Decodes in place when dst == src (the output never overtakes the input).
 * -1 for anything that is not valid COBS. */
long tvmq_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst) {
  size_t in = 0, out = 0;
  while (in < n) {
    uint8_t code = src[in++];
    if (code == 0 || in + code - 1u > n) return -1;
    for (uint8_t k = 1; k < code; k++) {
      if (src[in] == 0) return -1;
      dst[out++] = src[in++];
    }
    if (code != 0xFF && in < n) dst[out++] = 0;
  }
  return (long)out;
}

/* CRC-32 (IEEE 802.3, as zlib.crc32), a nibble table: 64 bytes of flash. */
uint32_t tvmq_crc32(const uint8_t *data, size_t n) {
  static const uint32_t table[16] = {
      0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
      0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
      0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    crc ^= data[i];
    crc = (crc >> 4) ^ table[crc & 15u];
    crc = (crc >> 4) ^ table[crc & 15u];
  }
  return ~crc;
}
