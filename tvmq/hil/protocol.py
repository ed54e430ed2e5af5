"""The harness's binary protocol, byte for byte as firmware/harness/ speaks it.

A frame is ``version u8 | command u8 | sequence u16 | session u32 | length u16 |
payload | CRC-32 u32`` (little-endian), COBS-encoded and sent between 0x00
bytes. firmware/README.md documents the commands and status codes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
MAX_PAYLOAD = 1024
HEADER = struct.Struct("<BBHIH")
CRC = struct.Struct("<I")


class Command(IntEnum):
    HELLO = 0x01
    WRITE_INPUT = 0x02
    RUN = 0x03
    READ_OUTPUT = 0x04
    READ_TIMING = 0x05
    RESET = 0x06
    FAULT = 0xFD
    NAK = 0xFF


REPLY = 0x80


class Status(IntEnum):
    OK = 0
    BAD_FRAME = 1
    BAD_VERSION = 2
    UNKNOWN_COMMAND = 3
    BAD_LENGTH = 4
    OUT_OF_RANGE = 5
    BAD_ARGUMENT = 6
    NO_SESSION = 7
    MODEL_FAILED = 8
    REPLY_TOO_LONG = 9


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result holds no 0x00 byte."""
    out = bytearray([0])
    code_at, code = 0, 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    """The decoded bytes, or None when ``data`` is not valid COBS."""
    out = bytearray()
    at = 0
    while at < len(data):
        code = data[at]
        at += 1
        if code == 0 or at + code - 1 > len(data):
            return None
        block = data[at : at + code - 1]
        if 0 in block:
            return None
        out += block
        at += code - 1
        if code != 0xFF and at < len(data):
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    command: int
    sequence: int
    session: int
    payload: bytes
    version: int = VERSION

    def encode(self) -> bytes:
        """The frame on the wire, delimiters included."""
        body = (
            HEADER.pack(self.version, self.command, self.sequence, self.session, len(self.payload))
            + self.payload
        )
        return b"\0" + cobs_encode(body + CRC.pack(zlib.crc32(body))) + b"\0"

    @classmethod
    def decode(cls, chunk: bytes) -> Frame | None:
        """A frame from the bytes between two delimiters; None if corrupt."""
        data = cobs_decode(chunk)
        if data is None or len(data) < HEADER.size + CRC.size:
            return None
        version, command, sequence, session, length = HEADER.unpack_from(data)
        body = HEADER.size + length
        if len(data) != body + CRC.size or CRC.unpack_from(data, body)[0] != zlib.crc32(
            data[:body]
        ):
            return None
        return cls(command, sequence, session, data[HEADER.size : body], version)


class Reader:
    """Splits a byte stream into the chunks between 0x00 delimiters."""

    def __init__(self, limit: int = 2 * (MAX_PAYLOAD + 64)):
        self.buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Complete chunks, in order; an over-long chunk is cut to the limit (and fails CRC)."""
        self.buffer += data
        *chunks, rest = bytes(self.buffer).split(b"\0")
        self.buffer = bytearray(rest[-self.limit :])
        return [c for c in chunks if c]
