"""The UART host-bridge protocol, declared once: the gateware (``systolica.hdl.board.bridge``)
and the host client (:class:`systolica.board.Board`) both use these definitions.

Request (host -> board) and reply (board -> host), byte by byte::

    request:  REQUEST_SYNC  command  length(u16 LE)  payload[length]  crc16(u16 BE)
    reply:    REPLY_SYNC    status   length(u16 LE)  payload[length]  crc16(u16 BE)

``crc16`` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) over
everything after the sync byte. Sent most significant byte first, it makes the CRC of the whole
frame (sync excluded) 0, which is how the gateware checks it.

The host sends one request and waits for its reply. Every request gets exactly one reply; a
refused request (bad CRC, truncated frame, bad length, unknown command, bad argument) gets a reply
with its :class:`Status` and an empty payload, is counted in ``INFO.refused`` and changes nothing:
a MEM_WRITE's data is held in the bridge until its CRC has been checked. Bytes outside a frame
(before a sync byte) are skipped and counted in ``INFO.skipped``. A frame whose bytes stop for
longer than the bridge's timeout is refused with ``TIMEOUT``; a length beyond ``MAX_PAYLOAD`` is
refused with ``BAD_LENGTH`` once the line has been quiet for the timeout (the rest of the garbage
is swallowed).
"""

import struct

from amaranth.hdl import unsigned
from amaranth.lib import data, enum


__all__ = ["REQUEST_SYNC", "REPLY_SYNC", "VERSION", "MAX_DATA", "MAX_PAYLOAD", "HEADER_BYTES",
           "CRC_BYTES", "BOUNDARY_BYTES", "Command", "Status", "ARGUMENTS", "INFO_FIELDS",
           "arguments_layout", "info_layout", "crc16", "crc16_update", "encode_request",
           "encode_reply", "pack_arguments", "unpack_info", "BoardInfo"]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
VERSION = 1
#: The most data bytes one MEM_READ or MEM_WRITE moves (one AXI burst).
MAX_DATA = 256
HEADER_BYTES = 4                      # sync, command/status, length
CRC_BYTES = 2
#: AXI bursts never cross this boundary, so neither does one MEM_READ / MEM_WRITE.
BOUNDARY_BYTES = 4096
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


class Command(enum.Enum, shape=8):
    INFO = 0x01          # -> INFO_FIELDS
    REG_READ = 0x02      # addr u16 -> data u32 (AXI4-Lite read of the tile's host port)
    REG_WRITE = 0x03     # addr u16, data u32 -> nothing
    MEM_READ = 0x04      # addr u32, nbytes u16 -> nbytes of DRAM (one AXI4 burst)
    MEM_WRITE = 0x05     # addr u32, data[...] -> nothing (one AXI4 burst)


class Status(enum.Enum, shape=8):
    OK = 0
    BAD_CRC = 1          # checksum mismatch: the frame was dropped
    TIMEOUT = 2          # the frame stopped before its end (inter-byte timeout)
    BAD_LENGTH = 3       # length beyond MAX_PAYLOAD, or wrong for the command
    BAD_COMMAND = 4      # unknown command byte
    BAD_ARGUMENT = 5     # unaligned, empty, too long, 4 KiB-crossing or beyond-DRAM access
    AXI_ERROR = 6        # the AXI slave answered SLVERR/DECERR (e.g. an unmapped register)


#: Fixed arguments at the start of each command's payload: (field, bytes), little-endian.
#: MEM_WRITE's data follows its arguments.
ARGUMENTS = {
    Command.INFO: (),
    Command.REG_READ: (("addr", 2),),
    Command.REG_WRITE: (("addr", 2), ("data", 4)),
    Command.MEM_READ: (("addr", 4), ("nbytes", 2)),
    Command.MEM_WRITE: (("addr", 4),),
}
#: The bytes the bridge keeps of a payload's start (the longest argument list).
ARGUMENT_BYTES = max(sum(n for _, n in fields) for fields in ARGUMENTS.values())
#: MEM_WRITE data starts at this payload byte.
DATA_OFFSET = sum(n for _, n in ARGUMENTS[Command.MEM_WRITE])
MAX_PAYLOAD = DATA_OFFSET + MAX_DATA

#: INFO reply payload: (field, bytes), little-endian.
INFO_FIELDS = (("version", 1), ("word_bytes", 1), ("max_data", 2), ("dram_bytes", 4),
               ("clock_hz", 4), ("refused", 2), ("skipped", 2))

_FORMATS = {1: "B", 2: "H", 4: "I"}


def _format(fields):
    return "<" + "".join(_FORMATS[n] for _, n in fields)


def arguments_layout(command):
    """The StructLayout of ``command``'s arguments (LSB first = the byte order on the wire)."""
    return data.StructLayout({name: unsigned(8 * n) for name, n in ARGUMENTS[command]})


def info_layout():
    return data.StructLayout({name: unsigned(8 * n) for name, n in INFO_FIELDS})


def crc16_update(crc, byte):
    """CRC-16/CCITT-FALSE of one more byte. Written with operators only, so the same function
    works on Python ints (host) and on Amaranth values (gateware)."""
    for i in reversed(range(8)):
        feedback = ((crc >> 15) ^ (byte >> i)) & 1
        crc = ((crc << 1) & 0xFFFF) ^ (-feedback & CRC_POLY)
    return crc


def crc16(data, crc=CRC_INIT):
    for byte in bytes(data):
        crc = crc16_update(crc, byte)
    return crc


def _frame(sync, code, payload):
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ValueError(f"frame payload must be at most 65535 bytes; got {len(payload)}")
    body = struct.pack("<BH", int(code), len(payload)) + payload
    return bytes([sync]) + body + struct.pack(">H", crc16(body))


def encode_request(command, payload=b""):
    """A request frame; ``command`` a :class:`Command` (or any byte, to test refusals)."""
    code = command.value if isinstance(command, Command) else int(command)
    if not 0 <= code <= 0xFF:
        raise ValueError(f"command must be a byte; got {command!r}")
    return _frame(REQUEST_SYNC, code, payload)


def encode_reply(status, payload=b""):
    return _frame(REPLY_SYNC, Status(status).value, payload)


def pack_arguments(command, **values):
    fields = ARGUMENTS[Command(command)]
    missing = {name for name, _ in fields} - set(values)
    if missing or set(values) - {name for name, _ in fields}:
        raise ValueError(f"{Command(command).name} takes {[n for n, _ in fields]}; "
                         f"got {sorted(values)}")
    for name, n in fields:
        if not 0 <= values[name] < 1 << (8 * n):
            raise ValueError(f"{Command(command).name} {name} must be in [0, 2**{8 * n}); "
                             f"got {values[name]}")
    return struct.pack(_format(fields), *(values[name] for name, _ in fields))


class BoardInfo(dict):
    """The INFO reply: ``{field: value}`` of :data:`INFO_FIELDS`, also as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def unpack_info(payload):
    size = sum(n for _, n in INFO_FIELDS)
    if len(payload) != size:
        raise ValueError(f"INFO reply must carry {size} bytes; got {len(payload)}")
    return BoardInfo(zip((name for name, _ in INFO_FIELDS),
                         struct.unpack(_format(INFO_FIELDS), payload)))
