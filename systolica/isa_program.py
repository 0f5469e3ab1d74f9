"""Queues, the config fingerprint and the program container and image of the ISA (part of
:mod:`systolica.isa`, which re-exports everything here)."""

import hashlib
import json
import re
import struct
from dataclasses import dataclass

from systolica.config import ChipConfig, TileConfig
from systolica.isa import (ISA_VERSION, WORD_BYTES, Engine, Instruction, IsaEncodingError, Opcode,
                           _check_range, check, decode_word, encode_word, end)


__all__ = ["Queue", "tile_queues", "fingerprint", "Program", "decode", "decode_words"]


# --- queues, fingerprint, program --------------------------------------------------------------

@dataclass(frozen=True)
class Queue:
    """One instruction queue of a tile: its ``name``, ``engine`` and ``index`` among the tile's
    queues (the CHECK instruction's ``queue`` field)."""
    name: str
    engine: Engine
    index: int


def tile_queues(config: TileConfig):
    """The queues of a tile (of any tile of a :class:`ChipConfig`), in order: one per DMA
    descriptor queue, then PE, then ACT."""
    if isinstance(config, ChipConfig):
        config = config.tile
    if not isinstance(config, TileConfig):
        raise TypeError(f"tile_queues config must be a TileConfig or ChipConfig; got {config!r}")
    names = [(f"dma{i}", Engine.DMA) for i in range(config.dma.queues)]
    names += [("pe", Engine.PE), ("act", Engine.ACT)]
    return tuple(Queue(name, engine, i) for i, (name, engine) in enumerate(names))


def fingerprint(config: TileConfig):
    """32-bit fingerprint of a tile config and the ISA: the first 4 bytes (little-endian) of the
    SHA-256 of the canonical JSON of the config (sorted keys, no spaces) and the ISA version.
    A :class:`ChipConfig` (every tile of a chip) has its own fingerprint: a program built for a
    standalone tile, or for another mesh, is refused by a chip's tiles."""
    if isinstance(config, ChipConfig):
        body = {"isa_version": ISA_VERSION, "chip": config.to_dict()}
    elif isinstance(config, TileConfig):
        body = {"isa_version": ISA_VERSION, "tile": config.to_dict()}
    else:
        raise TypeError(f"fingerprint config must be a TileConfig or ChipConfig; got {config!r}")
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


_MAGIC = b"SYSTISA\0"
_IMAGE_HEADER = struct.Struct("<8sHHIHH")          # magic, version, word bytes, fingerprint, queues, 0
_QUEUE_ENTRY = struct.Struct("<8sBBHII")           # name, engine, index, 0, byte offset, length


class Program:
    """A tile program: ``queues`` maps each queue name (:func:`tile_queues`) to its instruction
    list, ``fingerprint`` names the config it was built for. Use :meth:`build` to get the CHECK
    first and the END last in every queue."""

    def __init__(self, queues, fingerprint):
        self.queues = {str(name): list(insns) for name, insns in dict(queues).items()}
        for name, insns in self.queues.items():
            for pc, insn in enumerate(insns):
                if not isinstance(insn, Instruction):
                    raise TypeError(f"Program queue {name!r} pc {pc}: not an Instruction: "
                                    f"{insn!r}")
        _check_range("Program.fingerprint", fingerprint, 32, False)
        self.fingerprint = fingerprint

    @classmethod
    def build(cls, config: TileConfig, queues):
        """A program for ``config`` from ``{queue name: [instructions]}``: every queue of the
        tile (absent ones empty) gets CHECK first and END last (unless already there)."""
        fp = fingerprint(config)
        spec = tile_queues(config)
        unknown = sorted(set(queues) - {q.name for q in spec})
        if unknown:
            raise ValueError(f"Program.build: unknown queue(s) {', '.join(unknown)}; this config "
                             f"has {', '.join(q.name for q in spec)}")
        out = {}
        for q in spec:
            insns = list(queues.get(q.name, ()))
            if not insns or insns[0].opcode != Opcode.CHECK:
                insns.insert(0, check(fp, q.index))
            if insns[-1].opcode != Opcode.END:
                insns.append(end())
            out[q.name] = insns
        return cls(out, fp)

    def __eq__(self, other):
        return (isinstance(other, Program) and self.fingerprint == other.fingerprint
                and list(self.queues.items()) == list(other.queues.items()))

    def __repr__(self):
        sizes = ", ".join(f"{name}: {len(insns)}" for name, insns in self.queues.items())
        return f"Program(fingerprint=0x{self.fingerprint:08x}, {sizes})"

    @property
    def instructions(self):
        return sum(len(insns) for insns in self.queues.values())

    def encode(self):
        """The binary image: a header (magic, ISA version, word size, fingerprint, then per queue
        its name, engine, index, byte offset and length in instructions) padded to a multiple of
        64 bytes, then each queue's instruction words in turn (64-byte aligned), so the host sets
        each queue's base to image address + offset and its length."""
        entries = []
        head_bytes = _IMAGE_HEADER.size + _QUEUE_ENTRY.size * len(self.queues)
        offset = -(-head_bytes // WORD_BYTES) * WORD_BYTES
        body = []
        for index, (name, insns) in enumerate(self.queues.items()):
            engine = _queue_engine(name)
            if len(name.encode()) > 8:
                raise IsaEncodingError(f"queue name {name!r} is longer than 8 bytes")
            entries.append(_QUEUE_ENTRY.pack(name.encode(), engine.value, index, 0, offset,
                                             len(insns)))
            words = b"".join(encode_word(i) for i in insns)
            body.append(words)
            offset += len(words)
        head = _IMAGE_HEADER.pack(_MAGIC, ISA_VERSION, WORD_BYTES, self.fingerprint,
                                  len(self.queues), 0) + b"".join(entries)
        head += bytes(-len(head) % WORD_BYTES)
        return head + b"".join(body)

    def queue_offsets(self):
        """``{queue: (byte offset in the image, length in instructions)}``."""
        return {name: (off, n) for name, off, n, _ in _image_queues(self.encode())}


def _queue_engine(name):
    m = re.fullmatch(r"(dma)\d+|(pe)|(act)", name)
    if not m:
        raise IsaEncodingError(f"queue name must be dma<i>, pe or act; got {name!r}")
    return Engine.DMA if m.group(1) else Engine.PE if m.group(2) else Engine.ACT


def _image_queues(image):
    if len(image) < _IMAGE_HEADER.size:
        raise IsaEncodingError("program image shorter than its header")
    magic, version, word_bytes, fp, nqueues, _ = _IMAGE_HEADER.unpack_from(image, 0)
    if magic != _MAGIC:
        raise IsaEncodingError(f"not a systolica program image (magic {magic!r})")
    if version != ISA_VERSION or word_bytes != WORD_BYTES:
        raise IsaEncodingError(f"program image is ISA version {version} with {word_bytes}-byte "
                               f"words; this is version {ISA_VERSION}, {WORD_BYTES} bytes")
    out = []
    for i in range(nqueues):
        at = _IMAGE_HEADER.size + i * _QUEUE_ENTRY.size
        if at + _QUEUE_ENTRY.size > len(image):
            raise IsaEncodingError("program image truncated in its queue table")
        raw_name, _engine, _index, _, offset, length = _QUEUE_ENTRY.unpack_from(image, at)
        if offset % WORD_BYTES or offset + length * WORD_BYTES > len(image):
            raise IsaEncodingError(f"queue {i}: words at byte {offset} x {length} lie outside "
                                   f"the {len(image)}-byte image")
        out.append((raw_name.rstrip(b"\0").decode(), offset, length, fp))
    return out


def decode_words(image):
    """``(fingerprint, {queue: [64-byte words]})`` of an image, without decoding the words (the
    model runs raw words so that a bad opcode halts at its pc)."""
    queues = {}
    fp = None
    for name, offset, length, fp in _image_queues(image):
        queues[name] = [bytes(image[offset + i * WORD_BYTES:offset + (i + 1) * WORD_BYTES])
                        for i in range(length)]
    if fp is None:
        fp = _IMAGE_HEADER.unpack_from(image, 0)[3]
    return fp, queues



def decode(image):
    """The :class:`Program` of a binary image (:meth:`Program.encode`)."""
    fp, words = decode_words(image)
    queues = {}
    for name, ws in words.items():
        insns = []
        for pc, w in enumerate(ws):
            try:
                insns.append(decode_word(w))
            except IsaEncodingError as e:
                raise IsaEncodingError(f"queue {name} pc {pc}: {e}") from None
        queues[name] = insns
    return Program(queues, fp)


