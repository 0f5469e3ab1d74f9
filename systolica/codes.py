"""Status, error and mode codes: each declared once, as an ``amaranth.lib.enum.Enum`` with a
fixed shape, and used by the gateware (``m.Case(DmaError.SBUF_RANGE)``), the NumPy models
(``DmaError(code).name``), the host side and the generated docs alike.

This module imports no gateware: models, compiler and runtime may use it.
"""

from amaranth.lib import enum


__all__ = ["DmaError", "ActMode", "ACT_MODE_BYTES", "ACT_MODE_RANGE", "ACT_MODE_FLOAT", "IsaError", "RemoteKind", "EngineState",
           "codes_markdown"]


class DmaError(enum.Enum, shape=3):
    """A DMA descriptor's completion status (``done_info.error``, ``last_error``)."""
    OK = 0               #: the copy completed
    ZERO_SIZE = 1        #: elem_bytes == 0 or a count == 0
    SIZE_MISMATCH = 2    #: source and destination element counts differ
    SBUF_RANGE = 3       #: an SBUF side reaches below 0 or beyond the buffer
    DRAM_RANGE = 4       #: a DRAM side reaches below 0 or beyond 2**addr_width (wraps)
    BAD_SEMAPHORE = 5    #: semaphore id >= DmaConfig.semaphores
    AXI_READ_ERROR = 6   #: an AXI read answered SLVERR/DECERR
    AXI_WRITE_ERROR = 7  #: an AXI write answered SLVERR/DECERR


class ActMode(enum.Enum, shape=3):
    """The ACT unit's output element type (the command's ``mode``). Codes 0-3 fit the ISA's
    original 2-bit field; the floating-point modes (4-7) need a floating-point tensor engine
    (fp32 PSUM) and round to nearest even with saturation (docs/floating_point.md)."""
    INT8 = 0       #: saturate to [-128, 127], 1 byte
    UINT8 = 1      #: saturate to [0, 255], 1 byte
    INT16 = 2      #: saturate to [-32768, 32767], 2 bytes
    INT32 = 3      #: pass-through, wrapped to 32 bits (fp32 PSUM: its bit pattern), 4 bytes
    BF16 = 4       #: fp32 PSUM only: bfloat16, saturating to +-max finite, 2 bytes
    FP8_E4M3 = 5   #: fp32 PSUM only: float8_e4m3 (fn), saturating to +-448, 1 byte
    FP8_E5M2 = 6   #: fp32 PSUM only: float8_e5m2, saturating to +-57344, 1 byte
    FP32 = 7       #: fp32 PSUM only: scaled fp32, saturating to +-max finite, 4 bytes


class IsaError(enum.Enum, shape=5):
    """Why an engine halted (docs/isa.md): the engine stops at the bad instruction (its pc is
    reported with the code), the instruction writes nothing and signals nothing, and the other
    engines go on. ``DMA_ERROR`` comes with the descriptor's :class:`DmaError` as detail."""
    OK = 0                    #: no error
    UNKNOWN_OPCODE = 1        #: the opcode is not in the ISA (a zero word included)
    WRONG_ENGINE = 2          #: the opcode belongs to another engine than this queue's
    CONFIG_MISMATCH = 3       #: first instruction not a CHECK, or its fingerprint is not this tile's
    QUEUE_MISMATCH = 4        #: a CHECK's queue index is not this queue's
    QUEUE_OVERRUN = 5         #: the queue's length was reached without an END
    BAD_SEMAPHORE = 6         #: a semaphore id >= SEMAPHORES, or both waits name one semaphore
    SEMAPHORE_OVERFLOW = 7    #: a signal would take a semaphore past SEMAPHORE_MAX
    SBUF_RANGE = 8            #: a PE/ACT operand reaches past the end of a partition
    PSUM_RANGE = 9            #: a PSUM row >= banks * bank_rows
    PSUM_BANK = 10            #: M (or ACT rows) from psum_addr cross the end of its PSUM bank
    BAD_K = 11                #: LOAD_STATIONARY k = 0 or k > array.rows
    BAD_N = 12                #: LOAD_STATIONARY n or ACT cols = 0 or > array.cols
    BAD_COUNT = 13            #: MULTIPLY m, ACT rows or a repeat is 0
    MULTIPLY_BEFORE_LOAD = 14 #: MULTIPLY_MOVING before any LOAD_STATIONARY
    BAD_ACT_PARAM = 15        #: parameter entry out of range, scale beyond scale_bits, shift > max_shift, columns > C
    DMA_ERROR = 16            #: the DMA refused or failed the copy (detail: the DmaError)
    BAD_DMA_SPACE = 17        #: a reserved DMA space, or a remote operation (REMOTE_SBUF, SIGNAL_REMOTE) on a tile outside a chip
    ABORTED = 18              #: stopped by the host (reset/abort)
    DMA_FIELD_RANGE = 19      #: a DMA address, count, stride or elem_bytes does not fit the DMA config's fields
    LOAD_PENDING = 20         #: a LOAD_STATIONARY while the previous one's weights wait for their first MULTIPLY_MOVING
    BAD_REMOTE_TILE = 21      #: a REMOTE_SBUF destination or SIGNAL_REMOTE tile outside the chip's mesh


class RemoteKind(enum.Enum, shape=1):
    """What one remote flit (``systolica.hdl.contracts.remote_flit_layout``) does at the tile it
    reaches. Flits from one tile to another arrive in the order they were sent (one VC per
    (source, destination) pair, deterministic routing), and the receiver applies them in that
    order: a SIGNAL is applied only after every earlier WRITE from the same source is in the SBUF."""
    WRITE = 0    #: write one SBUF word (partition, word address, byte enables, data)
    SIGNAL = 1   #: add ``count`` to semaphore ``sem`` (dropped, and REMOTE_ERRORS set, if it would pass SEMAPHORE_MAX)


class EngineState(enum.Enum, shape=3):
    """The state of one queue's engine (host status registers, the model's final state)."""
    IDLE = 0      #: not started (or an empty queue)
    RUNNING = 1   #: executing an instruction
    WAITING = 2   #: its next instruction waits for a semaphore
    DONE = 3      #: retired its END
    HALTED = 4    #: stopped with an IsaError


#: Bytes per output element of each ACT mode.
ACT_MODE_BYTES = {ActMode.INT8: 1, ActMode.UINT8: 1, ActMode.INT16: 2, ActMode.INT32: 4,
                  ActMode.BF16: 2, ActMode.FP8_E4M3: 1, ActMode.FP8_E5M2: 1, ActMode.FP32: 4}
#: The floating-point output type (a :data:`systolica.config.FLOAT_FORMATS` name, or
#: ``float32``) of each floating-point ACT mode.
ACT_MODE_FLOAT = {ActMode.BF16: "bfloat16", ActMode.FP8_E4M3: "float8_e4m3",
                  ActMode.FP8_E5M2: "float8_e5m2", ActMode.FP32: "float32"}
#: Saturation range of each saturating ACT mode (INT32 wraps instead).
ACT_MODE_RANGE = {ActMode.INT8: (-128, 127), ActMode.UINT8: (0, 255),
                  ActMode.INT16: (-32768, 32767)}


def _doc_lines(cls):
    import inspect
    source = inspect.getsource(cls)
    comments = {}
    for line in source.splitlines():
        name, _, rest = line.strip().partition("=")
        if "#:" in rest:
            comments[name.strip()] = rest.split("#:", 1)[1].strip()
    return [f"| `{member.name}` | {member.value} | {comments.get(member.name, '')} |"
            for member in cls]


def codes_markdown(classes=(DmaError, ActMode)):
    """A Markdown table per code enum, for generated docs."""
    lines = []
    for cls in classes:
        width = cls.as_shape().width
        lines += [f"### `{cls.__name__}` ({width} bits)", "", " ".join(cls.__doc__.split()), "",
                  "| name | code | meaning |", "|---|---|---|", *_doc_lines(cls), ""]
    return "\n".join(lines)
