"""The stream contracts between blocks: every payload layout and port signature that crosses a
block boundary, declared once and imported by producer and consumer alike.

Layouts are functions of the config, so a changed config changes every user consistently.
docs/architecture.md ("Stream contracts between blocks") is the table of who produces and who
consumes each one. Status and mode codes live in :mod:`systolica.codes` (models use them too).
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from systolica.codes import ActMode, DmaError, RemoteKind
from systolica.config import (DTYPES, ActConfig, ArrayConfig, ChipConfig, DmaConfig, NocConfig,
                              SbufConfig, TileConfig)


__all__ = [
    "index_bits", "elements_per_word",
    # tensor engine
    "psum_tag_layout", "moving_layout", "weight_row_layout", "result_layout",
    # SBUF
    "moving_command_layout", "weights_command_layout", "vector_write_layout",
    "sbuf_request_layout", "sbuf_response_layout", "SbufPortSignature", "sbuf_errors_layout",
    # PSUM
    "psum_read_request_layout", "psum_read_response_layout", "PsumReadSignature",
    "psum_errors_layout",
    # ACT
    "ZERO_POINT_BITS", "act_command_layout", "act_errors_layout",
    # DMA
    "dma_side_layout", "dma_descriptor_layout", "dma_done_layout", "sem_sub_layout",
    # NoC network interface
    "send_layout", "recv_layout",
    # chip: remote operations between tiles
    "remote_flit_layout", "remote_tile_layout", "remote_write_layout", "remote_signal_layout",
]


def index_bits(n):
    """Width of an index into ``n`` things (at least 1 bit, so a field always exists)."""
    return max(1, ceil_log2(n))


def elements_per_word(sbuf: SbufConfig, dtype):
    return sbuf.word_bytes // (DTYPES[dtype][0] // 8)


# --- tensor engine ---------------------------------------------------------------------------

def psum_tag_layout(addr_bits):
    """What PSUM needs with each result vector: destination row, accumulate (1) or overwrite (0),
    and the last vector of a group (so PSUM / the sequencer can tell when a result is complete)."""
    return data.StructLayout({"addr": unsigned(addr_bits), "accumulate": 1, "last": 1})


def moving_layout(array: ArrayConfig):
    """One row of A (a K-vector) into the engine; ``start`` switches to the newest W."""
    return data.StructLayout({
        "data": data.ArrayLayout(array.moving_shape, array.rows),
        "start": 1,
        "tag": psum_tag_layout(array.result_addr_bits),
    })


def weight_row_layout(array: ArrayConfig):
    """One row k of W into the engine; ``last`` on row K-1."""
    return data.StructLayout({
        "data": data.ArrayLayout(array.stationary_shape, array.cols),
        "last": 1,
    })


def result_layout(array: ArrayConfig):
    """``A[m, :] @ W``, all C columns, with the moving beat's tag."""
    return data.StructLayout({
        "data": data.ArrayLayout(array.acc_shape, array.cols),
        "tag": psum_tag_layout(array.result_addr_bits),
    })


# --- SBUF --------------------------------------------------------------------------------------

def moving_command_layout(sbuf: SbufConfig, array: ArrayConfig):
    elems = sbuf.depth * elements_per_word(sbuf, array.moving_dtype)
    return data.StructLayout({
        "offset": unsigned(index_bits(elems)),      # element offset of A[0, :] in every partition
        "count": unsigned(elems.bit_length()),      # M: beats to produce (0: error, no beats)
        "start": 1,                                 # switch the engine to its new W on beat 0
        "addr": unsigned(array.result_addr_bits),   # PSUM row of beat 0 (beat m: addr + m)
        "accumulate": 1,
    })


def weights_command_layout(sbuf: SbufConfig, array: ArrayConfig):
    elems = sbuf.depth * elements_per_word(sbuf, array.stationary_dtype)
    return data.StructLayout({
        "offset": unsigned(index_bits(elems)),      # element offset of W[0, n] in partition n
        "rows": unsigned(array.rows.bit_length()),  # K in [1, R]: beats (weight rows)
        "cols": unsigned(array.cols.bit_length()),  # N in [1, C]: partitions read
    })


def vector_write_layout(sbuf: SbufConfig):
    """One word in every partition at one address (the ACT unit's output)."""
    return data.StructLayout({
        "addr": unsigned(index_bits(sbuf.depth)),
        "data": data.ArrayLayout(data.ArrayLayout(unsigned(8), sbuf.word_bytes), sbuf.partitions),
        "byte_enable": data.ArrayLayout(unsigned(sbuf.word_bytes), sbuf.partitions),
    })


def sbuf_request_layout(sbuf: SbufConfig):
    return data.StructLayout({
        "write": 1,
        "partition": unsigned(index_bits(sbuf.partitions)),
        "addr": unsigned(index_bits(sbuf.depth)),
        "data": data.ArrayLayout(unsigned(8), sbuf.word_bytes),
        "byte_enable": unsigned(sbuf.word_bytes),
    })


def sbuf_response_layout(sbuf: SbufConfig):
    return data.StructLayout({"data": data.ArrayLayout(unsigned(8), sbuf.word_bytes)})


class SbufPortSignature(wiring.Signature):
    """The SBUF word-access port, requester's view (the SBUF takes it flipped): a ``request``
    stream of word accesses out and an in-order ``response`` stream in, one beat per *read*.
    A request addresses one word (``word_bytes`` bytes) of one partition; ``byte_enable`` bit i
    enables byte i of a write (ignored for reads); byte i of a word is the byte at offset
    ``addr * word_bytes + i`` of the partition. An address beyond the partition, or a partition
    beyond P, does not touch memory: the SBUF sets its error flag, answers a read with zeros (so
    the requester never hangs) and goes on."""

    def __init__(self, sbuf: SbufConfig):
        self._config = sbuf
        super().__init__({
            "request": Out(stream.Signature(sbuf_request_layout(sbuf))),
            "response": In(stream.Signature(sbuf_response_layout(sbuf))),
        })

    @property
    def config(self):
        return self._config

    def __eq__(self, other):
        return isinstance(other, SbufPortSignature) and self._config == other._config

    def __repr__(self):
        return f"SbufPortSignature({self._config!r})"


def sbuf_errors_layout():
    return data.StructLayout({"dma": 1, "moving": 1, "weights": 1, "vector": 1})


# --- PSUM --------------------------------------------------------------------------------------

def psum_read_request_layout(array: ArrayConfig):
    return data.StructLayout({"addr": unsigned(array.result_addr_bits)})


def psum_read_response_layout(array: ArrayConfig):
    return data.StructLayout({"data": data.ArrayLayout(array.acc_shape, array.cols)})


class PsumReadSignature(wiring.Signature):
    """Requester's view of the PSUM read port: ``request`` out, ``response`` in (one response
    per request, in order)."""

    def __init__(self, array: ArrayConfig):
        self._array = array
        super().__init__({
            "request": Out(stream.Signature(psum_read_request_layout(array))),
            "response": In(stream.Signature(psum_read_response_layout(array))),
        })

    def __eq__(self, other):
        return isinstance(other, PsumReadSignature) and self._array == other._array

    def __repr__(self):
        return f"PsumReadSignature({self._array!r})"


def psum_errors_layout():
    return data.StructLayout({"result": 1, "read": 1})


# --- ACT ---------------------------------------------------------------------------------------

ZERO_POINT_BITS = 17     # covers every int8 / uint8 / int16 zero point


def act_command_layout(tile: TileConfig):
    """PSUM rows ``psum_addr ..`` → SBUF element ``offset ..`` of partitions ``0..cols-1``."""
    array, sbuf = tile.array, tile.sbuf
    return data.StructLayout({
        "psum_addr": unsigned(array.result_addr_bits),
        "rows": unsigned(array.result_addr_bits + 1),
        "offset": unsigned(index_bits(sbuf.depth * sbuf.word_bytes)),
        "cols": unsigned(array.cols.bit_length()),
        "mode": ActMode,
        "relu": 1,
        "zero_point": signed(ZERO_POINT_BITS),
    })


def act_errors_layout():
    return data.StructLayout({"shift": 1, "addr": 1})


# --- DMA ---------------------------------------------------------------------------------------

def dma_side_layout(dma: DmaConfig):
    """One side (source or destination) of a descriptor."""
    return data.StructLayout({
        "sbuf": 1,                                   # 0: DRAM byte address, 1: SBUF address
        "addr": unsigned(dma.addr_width),
        "count": data.ArrayLayout(unsigned(dma.count_bits), 3),
        "stride": data.ArrayLayout(signed(dma.addr_width), 3),
    })


def dma_descriptor_layout(dma: DmaConfig, noc: NocConfig = None):
    """A DMA descriptor. A chip's tile (``noc`` given) adds ``remote``: ``valid`` sends every SBUF
    word write of the destination (``dst.sbuf`` = 1, range-checked as a local SBUF) to the SBUF
    of tile (``x``, ``y``) as one remote WRITE flit instead (docs/chip.md)."""
    fields = {
        "src": dma_side_layout(dma),
        "dst": dma_side_layout(dma),
        "elem_bytes": unsigned(dma.elem_bits),
        "semaphore": unsigned(index_bits(dma.semaphores)),
    }
    if noc is not None:
        fields["remote"] = remote_tile_layout(noc, valid=True)
    return data.StructLayout(fields)


def dma_done_layout(dma: DmaConfig):
    return data.StructLayout({
        "queue": unsigned(index_bits(dma.queues)),
        "semaphore": unsigned(index_bits(dma.semaphores)),
        "error": DmaError,
    })


def sem_sub_layout(dma: DmaConfig):
    return data.StructLayout({
        "id": unsigned(index_bits(dma.semaphores)),
        "amount": unsigned(dma.semaphore_bits),
    })


# --- NoC network interface (tile side) ---------------------------------------------------------

def send_layout(noc: NocConfig):
    # One bit wider than a coordinate inside the mesh needs, so that a destination outside the
    # mesh can be expressed (and refused).
    return data.StructLayout({
        "dst_x": unsigned(noc.width.bit_length()),
        "dst_y": unsigned(noc.height.bit_length()),
        "data": unsigned(noc.payload_bits),
        "last": 1,
    })


def recv_layout(noc: NocConfig):
    return data.StructLayout({
        "src_x": unsigned(index_bits(noc.width)),
        "src_y": unsigned(index_bits(noc.height)),
        "data": unsigned(noc.payload_bits),
        "last": 1,
    })


# --- chip: remote operations between tiles (docs/chip.md) --------------------------------------

def remote_flit_layout(chip: ChipConfig):
    """The payload of one remote flit (the low ``ChipConfig.remote_flit_bits`` bits of a NoC
    flit's ``data``; one flit per packet, head and tail). ``kind`` selects the body: a WRITE of
    one SBUF word (the fields of an SBUF write request), or a SIGNAL of a semaphore."""
    sbuf = chip.tile.sbuf
    layout = data.StructLayout({
        "kind": RemoteKind,
        "body": data.UnionLayout({
            "write": data.StructLayout({
                "partition": unsigned(index_bits(sbuf.partitions)),
                "addr": unsigned(index_bits(sbuf.depth)),
                "byte_enable": unsigned(sbuf.word_bytes),
                "data": data.ArrayLayout(unsigned(8), sbuf.word_bytes),
            }),
            "signal": data.StructLayout({"sem": unsigned(6), "count": unsigned(16)}),
        }),
    })
    assert layout.size == chip.remote_flit_bits, "ChipConfig.remote_flit_bits is out of date"
    return layout


def remote_tile_layout(noc: NocConfig, valid=False):
    """A tile of the mesh (``x``, ``y``; with ``valid`` first when asked)."""
    fields = {"valid": 1} if valid else {}
    fields.update({"x": unsigned(index_bits(noc.width)), "y": unsigned(index_bits(noc.height))})
    return data.StructLayout(fields)


def remote_write_layout(chip: ChipConfig):
    """DMA -> remote interface: one SBUF word write for tile (``x``, ``y``), the ``write`` body
    of :func:`remote_flit_layout`."""
    return data.StructLayout({
        "tile": remote_tile_layout(chip.noc),
        "write": remote_flit_layout(chip).members["body"].members["write"],
    })


def remote_signal_layout(chip: ChipConfig):
    """Sequencer (a SIGNAL_REMOTE) -> remote interface: the ``signal`` body of
    :func:`remote_flit_layout` for tile (``x``, ``y``)."""
    return data.StructLayout({
        "tile": remote_tile_layout(chip.noc),
        "signal": remote_flit_layout(chip).members["body"].members["signal"],
    })
