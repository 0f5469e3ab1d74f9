"""The ISA (systolica/isa.py): layouts, encode/decode, the program image, the text assembly and
the generated docs. Round trips are property tests (hypothesis) over random valid programs."""

import pathlib

import pytest
from amaranth.lib import enum
from hypothesis import given, settings, strategies as st

from systolica import isa
from systolica.codes import ActMode, EngineState, IsaError
from systolica.config import ArrayConfig, DmaConfig, SbufConfig, TileConfig
from systolica.isa import (BODY_LAYOUTS, INSTRUCTION_LAYOUT, IsaEncodingError, Opcode, Program,
                           Space, WORD_BYTES)


# --- strategies: any instruction whose fields fit their widths ---------------------------------

def _field_strategy(f):
    if f.enum is not None:
        return st.sampled_from(list(f.enum))
    lo, hi = ((-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed
              else (0, (1 << f.width) - 1))
    one = st.integers(lo, hi)
    return st.tuples(*[one] * f.count) if f.count > 1 else one


_sem_pair = st.tuples(st.integers(0, 63), st.integers(0, isa.SEMAPHORE_MAX))


@st.composite
def instructions(draw):
    opcode = draw(st.sampled_from(list(Opcode)))
    fields = {f.name: draw(_field_strategy(f)) for f in isa._BODY_FIELDS[opcode]}
    waits = draw(st.lists(_sem_pair, max_size=2))
    signals = draw(st.lists(_sem_pair, max_size=2))
    return isa.Instruction(opcode, waits=waits, signals=signals, **fields)


@st.composite
def programs(draw):
    nqueues = draw(st.integers(1, 8))
    names = [f"dma{i}" for i in range(nqueues)] + ["pe", "act"]
    queues = {name: draw(st.lists(instructions(), max_size=6)) for name in names}
    return Program(queues, draw(st.integers(0, (1 << 32) - 1)))


# --- layouts ------------------------------------------------------------------------------------

def test_word_is_512_bits_and_every_body_fits():
    assert INSTRUCTION_LAYOUT.size == 512 == 8 * WORD_BYTES
    assert isa.HEADER_LAYOUT.size == 96
    assert max(layout.size for layout in BODY_LAYOUTS.values()) == 416
    # the DMA body is the largest; it is exactly the room left after the header
    assert BODY_LAYOUTS[Opcode.DMA_COPY].size == 512 - 96


def test_layouts_do_not_depend_on_the_config():
    # The layouts are module constants: no function of a config builds them.
    big = TileConfig(array=ArrayConfig(rows=16, cols=16), sbuf=SbufConfig(partitions=16),
                     dma=DmaConfig(queues=8))
    assert isa.fingerprint(big) != isa.fingerprint(TileConfig())
    assert INSTRUCTION_LAYOUT.size == 512
    assert [q.name for q in isa.tile_queues(big)] == [f"dma{i}" for i in range(8)] + ["pe", "act"]


def test_opcode_zero_is_not_an_opcode_and_high_nibble_names_the_engine():
    assert 0 not in {op.value for op in Opcode}
    for op, engine in isa.OPCODE_ENGINES.items():
        expected = {0: None, 1: isa.Engine.DMA, 2: isa.Engine.PE, 3: isa.Engine.ACT}[op.value >> 4]
        assert engine == expected, op


def test_codes_are_fixed_shape_enums():
    for cls, width in ((Opcode, 8), (IsaError, 5), (EngineState, 3), (Space, 2)):
        assert issubclass(cls, enum.Enum) and cls.as_shape().width == width


def test_word_matches_the_amaranth_layout():
    insn = isa.dma_copy(isa.dram(0x123456789a, (4, 3, 2), (1, 100, -7000)),
                        isa.sbuf(2048 * 3 + 5, (24,), (1,)), elem_bytes=3,
                        waits=[(5, 2), (31, 65535)], signals=[(1, 1)])
    view = INSTRUCTION_LAYOUT.from_bits(int.from_bytes(insn.encode(), "little"))
    assert view.header.opcode == Opcode.DMA_COPY
    assert (view.header.wait[0].sem, view.header.wait[0].count) == (5, 2)
    assert (view.header.wait[1].sem, view.header.wait[1].count) == (31, 65535)
    assert (view.header.signal[0].sem, view.header.signal[0].count) == (1, 1)
    assert view.header.signal[1].count == 0
    body = view.body.dma_copy
    assert body.src.space == Space.DRAM and body.dst.space == Space.SBUF
    assert body.src.addr == 0x123456789a and body.dst.addr == 2048 * 3 + 5
    assert [body.src.count[i] for i in range(3)] == [4, 3, 2]
    assert [body.src.stride[i] for i in range(3)] == [1, 100, -7000]
    assert body.elem_bytes == 3
    act = isa.act(7, 9, 11, 5, mode=ActMode.INT16, relu=True, zero_point=-65536, param=3,
                  repeat=2, psum_step=128, offset_step=64)
    view = INSTRUCTION_LAYOUT.from_bits(int.from_bytes(act.encode(), "little")).body.act
    assert (view.psum_addr, view.rows, view.offset, view.cols) == (7, 9, 11, 5)
    # The mode's low bits keep their old place; bit 2 (floating-point modes) is mode_high.
    assert ActMode(view.mode | view.mode_high << 2) == ActMode.INT16
    assert view.relu == 1 and view.zero_point == -65536
    assert (view.param, view.repeat, view.psum_step, view.offset_step) == (3, 2, 128, 64)
    for mode in ActMode:
        word = isa.act(7, 9, 11, 5, mode=mode, relu=True).encode()
        view = INSTRUCTION_LAYOUT.from_bits(int.from_bytes(word, "little")).body.act
        assert (view.mode, view.mode_high) == (mode.value & 3, mode.value >> 2)
        assert view.relu == 1 and isa.decode_word(word).mode == mode


@settings(max_examples=150, deadline=None)
@given(instructions())
def test_word_round_trip(insn):
    word = insn.encode()
    assert len(word) == WORD_BYTES
    assert isa.decode_word(word) == insn
    assert int.from_bytes(word, "little") & 0xff == insn.opcode.value


@settings(max_examples=60, deadline=None)
@given(programs())
def test_program_encode_decode_round_trip(program):
    image = program.encode()
    assert isa.decode(image) == program
    # every queue's words start 64-byte aligned at the offset the header gives
    for name, (offset, length) in program.queue_offsets().items():
        assert offset % WORD_BYTES == 0 and length == len(program.queues[name])
        for pc, insn in enumerate(program.queues[name]):
            assert image[offset + pc * WORD_BYTES:offset + (pc + 1) * WORD_BYTES] == insn.encode()


@settings(max_examples=60, deadline=None)
@given(programs())
def test_disassemble_assemble_round_trip(program):
    text = isa.disassemble(program)
    assert isa.assemble(text) == program


def test_assembler_defaults_comments_and_config_fingerprint():
    config = TileConfig()
    program = isa.assemble("""
        .queue dma0
        check fingerprint=0x1 queue=0      # comment
        dma_copy src_addr=64 dst_space=sbuf dst_count=8 signal=3:1
        .queue pe
        multiply_moving m=4 psum_addr=2 accumulate=1 wait=3:1
        end
    """, config)
    assert program.fingerprint == isa.fingerprint(config)
    copy = program.queues["dma0"][1]
    assert copy == isa.dma_copy(isa.dram(64), isa.sbuf(0, (8,)), signals=[(3, 1)])
    mult = program.queues["pe"][0]
    assert mult == isa.multiply_moving(0, 4, 2, accumulate=True, waits=[(3, 1)])
    assert mult.repeat == 1


@pytest.mark.parametrize("text, message", [
    (".queue pe\n bogus x=1", "line 2: unknown mnemonic 'bogus'"),
    (".queue pe\n end k=1", "line 2: END has no field 'k'"),
    (".queue pe\n load_stationary k=70000", "LOAD_STATIONARY.k must be an integer in"),
    (".queue pe\n load_stationary k", "expected field=value"),
    ("end", "instruction before any '.queue NAME'"),
    (".queue gpu", "queue name must be dma<i>, pe or act"),
    (".queue pe\n end wait=40", "wait needs semaphore:count"),
    (".queue pe\n end wait=64:1", "wait semaphore must be an integer in [0, 63]"),
])
def test_assembler_errors_name_the_line_and_field(text, message):
    with pytest.raises(IsaEncodingError) as info:
        isa.assemble(text + "\n.fingerprint 0")
    assert message in str(info.value)


def test_instruction_checks_field_widths_and_names():
    with pytest.raises(IsaEncodingError, match=r"MULTIPLY_MOVING.accumulate must be an integer"):
        isa.Instruction(Opcode.MULTIPLY_MOVING, accumulate=2)
    with pytest.raises(IsaEncodingError, match=r"DMA_COPY.src_stride\[2\]"):
        isa.dma_copy(isa.dram(0, (1, 1, 1), (0, 0, 1 << 31)), isa.sbuf(0))
    with pytest.raises(IsaEncodingError, match="LOAD_STATIONARY has no field"):
        isa.Instruction(Opcode.LOAD_STATIONARY, m=3)
    with pytest.raises(IsaEncodingError, match="at most 2"):
        isa.nop(waits=[(0, 1)] * 3)
    with pytest.raises(IsaEncodingError, match="unknown opcode"):
        isa.Instruction(0)
    with pytest.raises(IsaEncodingError, match="1..8 values"):
        isa.act_param(0, 0, [1] * 9, [0] * 9)
    with pytest.raises(AttributeError, match="immutable"):
        isa.end().opcode = Opcode.NOP


def test_waits_with_count_zero_do_nothing_and_compare_equal():
    assert isa.nop(waits=[(7, 0), (3, 2)]) == isa.nop(waits=[(3, 2)])
    assert isa.nop(waits=[(7, 0)]).waits == ((0, 0), (0, 0))


def test_decode_word_refuses_unknown_opcodes_and_bad_images():
    with pytest.raises(IsaEncodingError, match="unknown opcode 0x00"):
        isa.decode_word(bytes(WORD_BYTES))
    with pytest.raises(IsaEncodingError, match="64 bytes"):
        isa.decode_word(bytes(8))
    with pytest.raises(IsaEncodingError, match="not a systolica program image"):
        isa.decode(b"x" * 64)
    image = bytearray(Program.build(TileConfig(), {}).encode())
    image[8] = 99                                       # ISA version
    with pytest.raises(IsaEncodingError, match="ISA version 99"):
        isa.decode(bytes(image))
    good = Program.build(TileConfig(), {}).encode()
    with pytest.raises(IsaEncodingError, match="outside"):
        isa.decode(good[:-64])


def test_build_adds_check_first_and_end_last_in_every_queue():
    config = TileConfig()
    program = Program.build(config, {"pe": [isa.load_stationary(0, 8, 8)]})
    fp = isa.fingerprint(config)
    assert list(program.queues) == ["dma0", "dma1", "pe", "act"]
    for q in isa.tile_queues(config):
        insns = program.queues[q.name]
        assert insns[0] == isa.check(fp, q.index) and insns[-1] == isa.end()
    assert program.queues["pe"][1] == isa.load_stationary(0, 8, 8)
    with pytest.raises(ValueError, match="unknown queue"):
        Program.build(config, {"dma5": []})


def test_fingerprint_changes_with_any_config_field_and_is_stable():
    base = TileConfig()
    assert isa.fingerprint(base) == isa.fingerprint(TileConfig())
    others = [TileConfig(array=ArrayConfig(acc_bits=31)), TileConfig(dma=DmaConfig(queues=3)),
              TileConfig(array=ArrayConfig(multiplier_stages=1))]
    assert len({isa.fingerprint(c) for c in [base, *others]}) == 4


def test_docs_isa_generated_part_is_current():
    doc = pathlib.Path(__file__).parent.parent / "docs" / "isa.md"
    text = doc.read_text()
    assert isa.update_doc(text) == text, \
        "docs/isa.md is stale: regenerate with `python -m systolica.isa_asm docs/isa.md`"


def test_the_docs_assembly_example_assembles_and_round_trips():
    text = (pathlib.Path(__file__).parent.parent / "docs" / "isa.md").read_text()
    example = text.split("```\n.fingerprint", 1)[1].split("```", 1)[0]
    program = isa.assemble(".fingerprint" + example)
    assert isa.assemble(isa.disassemble(program)) == program
    assert program.queues["pe"][2].opcode == Opcode.MULTIPLY_MOVING
