"""The SBUF word-access port: the contract between the SBUF and its word-wide requesters (DMA).

From the requester's side (``SbufPortSignature`` is the requester's view; the SBUF takes it
flipped): a ``request`` stream of word accesses and an in-order ``response`` stream that carries
one beat per *read* request. A request addresses one word (``word_bytes`` bytes) of one partition;
``byte_enable`` bit i enables byte i of a write (ignored for reads). Byte i of a word is the byte at
byte offset ``addr * word_bytes + i`` of the partition. An address beyond the partition, or a
partition beyond P, does not touch memory: the SBUF sets its error flag, answers a read with zeros
(so the requester never hangs) and goes on.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import SbufConfig


__all__ = ["sbuf_request_layout", "sbuf_response_layout", "SbufPortSignature"]


def _bits_for(n):
    return max(1, (n - 1).bit_length())


def sbuf_request_layout(config: SbufConfig):
    return data.StructLayout({
        "write": 1,
        "partition": unsigned(_bits_for(config.partitions)),
        "addr": unsigned(_bits_for(config.depth)),
        "data": data.ArrayLayout(unsigned(8), config.word_bytes),
        "byte_enable": unsigned(config.word_bytes),
    })


def sbuf_response_layout(config: SbufConfig):
    return data.StructLayout({"data": data.ArrayLayout(unsigned(8), config.word_bytes)})


class SbufPortSignature(wiring.Signature):
    """Requester's view: ``request`` out, ``response`` in."""

    def __init__(self, config: SbufConfig):
        self._config = config
        super().__init__({
            "request": Out(stream.Signature(sbuf_request_layout(config))),
            "response": In(stream.Signature(sbuf_response_layout(config))),
        })

    @property
    def config(self):
        return self._config

    def __eq__(self, other):
        return isinstance(other, SbufPortSignature) and self._config == other._config

    def __repr__(self):
        return f"SbufPortSignature({self._config!r})"
