"""The SBUF's column reader (moving and weights operands): see :func:`column_reader`."""

from types import SimpleNamespace

from amaranth.hdl import *
from amaranth.lib import data

from .contracts import index_bits
from .sbuf_ram import READ_LATENCY


__all__ = ["BUFFER_WORDS", "column_reader"]


#: Words a column reader buffers or has in flight: one more than the read latency, so a command
#: of one element per word still streams one beat per cycle.
BUFFER_WORDS = READ_LATENCY + 1


def column_reader(m, name, read_data, *, config, elem_bits, offset_shape, count_shape,
                  index_width, user_layout, req, addr, grant, err):
    """Streams elements ``offset .. offset + count - 1`` of every partition whose read word is
    in ``read_data``, one beat (one element of each partition) per cycle. It reads a word from
    all of them at once (one read grant per ``E = word bits / elem_bits`` elements) into a
    ``BUFFER_WORDS``-word circular buffer. ``config``: the :class:`~systolica.config.SbufConfig`.

    Returns a namespace of signals: command side ``cmd_valid``, ``cmd_ready``, ``cmd_offset``,
    ``cmd_count`` (0: an error, no beats), ``cmd_index`` (the index of beat 0; beat i gets
    ``cmd_index + i``, wrapping at ``index_width`` bits), ``cmd_user`` (passed through); beat
    side ``valid``, ``ready``, ``elems`` (one value per partition), ``index``, ``first``,
    ``last``, ``user``.
    """
    D, n = config.depth, len(read_data)
    E = 8 * config.word_bytes // elem_bits
    lane_bits = (E - 1).bit_length()
    io = SimpleNamespace(
        cmd_valid=Signal(name=f"{name}_cmd_valid"), cmd_ready=Signal(name=f"{name}_cmd_ready"),
        cmd_offset=Signal(offset_shape, name=f"{name}_cmd_offset"),
        cmd_count=Signal(count_shape, name=f"{name}_cmd_count"),
        cmd_index=Signal(index_width, name=f"{name}_cmd_index"),
        cmd_user=Signal(user_layout, name=f"{name}_cmd_user"),
        valid=Signal(name=f"{name}_valid"), ready=Signal(name=f"{name}_ready"),
        elems=[Signal(elem_bits, name=f"{name}_elem{k}") for k in range(n)],
        index=Signal(index_width, name=f"{name}_index"),
        first=Signal(name=f"{name}_first"), last=Signal(name=f"{name}_last"),
        user=Signal(user_layout, name=f"{name}_user"))

    # Fetch side: walks the words of the current command.
    busy = Signal(name=f"{name}_busy")
    word = Signal(len(io.cmd_offset) + 1, name=f"{name}_word")   # may run past D
    lane = Signal(range(E), name=f"{name}_lane")
    remaining = Signal(count_shape, name=f"{name}_remaining")
    index = Signal(index_width, name=f"{name}_next_index")
    first = Signal(name=f"{name}_next_first")
    user = Signal(user_layout, name=f"{name}_cur_user")

    # A circular buffer of N words (one per partition each) with their metadata.
    N = BUFFER_WORDS
    meta_layout = data.StructLayout({
        "lane": unsigned(max(1, lane_bits)),        # next element to serve
        "lane_last": unsigned(max(1, lane_bits)),   # last element of the command in the word
        "at_last": 1,                               # lane == lane_last (kept as a register:
                                                    # the pop decision is then one gate)
        "index": unsigned(index_width),
        "first": 1, "last": 1,
        "zero": 1,                                  # past the partition: serve zeros
        "user": user_layout,
    })
    words = [[Signal(8 * config.word_bytes, name=f"{name}_word{i}_{k}") for k in range(n)]
             for i in range(N)]
    metas = [Signal(meta_layout, name=f"{name}_meta{i}") for i in range(N)]
    rd_ptr = Signal(range(N), name=f"{name}_rd_ptr")
    wr_ptr = Signal(range(N), name=f"{name}_wr_ptr")
    rd_ptr_after = Signal.like(rd_ptr, name=f"{name}_rd_ptr_after")   # the entry after the head
    occ = Signal(range(N + 1), name=f"{name}_occ")
    # A word granted in cycle t is `inflight` in t + 1 and `landed` in t + READ_LATENCY (in the
    # SBUF's `read_data` register), when the buffer takes it.
    inflight = Signal(name=f"{name}_inflight")
    inflight_meta = Signal(meta_layout, name=f"{name}_inflight_meta")

    # Serve side: the head entry's `lane` advances as beats are taken.
    head = Signal(meta_layout, name=f"{name}_head")
    m.d.comb += [head.eq(Array(metas)[rd_ptr]),
                 rd_ptr_after.eq(Mux(rd_ptr == N - 1, 0, rd_ptr + 1))]
    m.d.comb += io.valid.eq(occ != 0)
    for k in range(n):
        elem = Array(words[i][k] for i in range(N))[rd_ptr].word_select(head.lane, elem_bits)
        m.d.comb += io.elems[k].eq(Mux(head.zero, 0, elem))
    m.d.comb += [
        io.index.eq(head.index), io.first.eq(head.first), io.user.eq(head.user),
        io.last.eq(head.last & head.at_last),
    ]
    take = io.valid & io.ready
    pop = Signal(name=f"{name}_pop")
    # `head_pops`: a head entry exists and its next beat is its word's last, as a register
    # (the head's `at_last` through the entry multiplexer and `occ != 0` came before the
    # read credit, the read arbiter and the block RAM's enable).
    head_pops = Signal(name=f"{name}_head_pops")
    m.d.comb += pop.eq(io.ready & head_pops)

    # Fetching: at most N words buffered or in flight, counting a word leaving this cycle.
    # `held` (= occ + inflight + landed) is its own register, so the credit is one gate after
    # the pop (an adder and a comparison there were the start of the SBUF's critical path).
    # word < D (a power of two), kept as a register beside `word`: it gates the request.
    in_range = Signal(init=1, name=f"{name}_in_range")
    held = Signal(range(N + 1), name=f"{name}_held")
    credit = Signal(name=f"{name}_credit")
    issue = Signal(name=f"{name}_issue")
    # The request (busy & in_range & credit) from two registers computed a cycle ahead:
    # `wants` (a word fits whatever the pop) and `wants_on_pop` (it fits if the head pops),
    # so a grant is a couple of gates after the consumer's ready.
    busy_next, in_range_next = Signal(), Signal()
    cmd_in_range, in_range_after_word = Signal(), Signal()
    held_next, head_pops_next = Signal.like(held), Signal()
    wants, wants_on_pop = Signal(name=f"{name}_wants"), Signal(name=f"{name}_wants_on_pop")
    m.d.comb += [busy_next.eq(busy), in_range_next.eq(in_range),
                 held_next.eq(held + issue - pop)]
    m.d.sync += [busy.eq(busy_next), in_range.eq(in_range_next), held.eq(held_next)]
    m.d.comb += [
        credit.eq((held < N) | pop),
        req.eq(wants | (wants_on_pop & io.ready)),
        addr.eq(word),
        # (a granted read, or a word past the partition, which needs no grant)
        issue.eq(grant | (busy & credit & ~in_range)),
    ]
    n_here = Signal(range(E + 1), name=f"{name}_n_here")   # elements of the command here
    is_last = Signal(name=f"{name}_is_last")
    m.d.comb += [
        is_last.eq(remaining <= E - lane),
        n_here.eq(Mux(is_last, remaining, E - lane)),
    ]
    m.d.comb += [cmd_in_range.eq((io.cmd_offset >> lane_bits)[index_bits(D):] == 0),
                 in_range_after_word.eq((word + 1)[index_bits(D):] == 0)]
    m.d.sync += inflight.eq(issue)
    landed, landed_meta = inflight, inflight_meta
    for i in range(2, READ_LATENCY + 1):
        stage = (Signal(name=f"{name}_inflight{i}"),
                 Signal(meta_layout, name=f"{name}_inflight_meta{i}"))
        m.d.sync += [stage[0].eq(landed), stage[1].eq(landed_meta)]
        landed, landed_meta = stage
    # Computed for each value of the two late signals, `issue` (after the grant) and `pop`
    # (after the consumer's ready), which then only select.
    next_wants = {}
    for issued in (0, 1):
        for popped in (0, 1):
            ends = C(issued) & is_last
            fire = io.cmd_valid & (~busy | ends)
            still_busy = Mux(fire, io.cmd_count != 0, busy & ~ends)
            fetchable = still_busy & Mux(fire, cmd_in_range,
                                         in_range_after_word if issued else in_range)
            held_then = held + issued - popped
            next_wants[issued, popped] = (fetchable & (held_then < N),
                                          fetchable & (held_then == N))
    chosen = [Mux(issue, Mux(pop, next_wants[1, 1][i], next_wants[1, 0][i]),
                  Mux(pop, next_wants[0, 1][i], next_wants[0, 0][i])) for i in range(2)]
    m.d.sync += [wants.eq(chosen[0]), wants_on_pop.eq(chosen[1] & head_pops_next)]
    with m.If(issue):
        m.d.sync += [
            inflight_meta.zero.eq(~in_range),
            inflight_meta.lane.eq(lane),
            inflight_meta.lane_last.eq(lane + n_here - 1),
            inflight_meta.at_last.eq(n_here == 1),
            inflight_meta.index.eq(index),
            inflight_meta.first.eq(first),
            inflight_meta.last.eq(is_last),
            inflight_meta.user.eq(user),
            word.eq(word + 1), lane.eq(0), first.eq(0),
            remaining.eq(remaining - n_here),
            index.eq(index + n_here),
        ]
        m.d.comb += in_range_next.eq(in_range_after_word)
        with m.If(is_last):
            m.d.comb += busy_next.eq(0)
    m.d.comb += err.eq(issue & ~in_range)

    m.d.comb += io.cmd_ready.eq(~busy | (issue & is_last))
    with m.If(io.cmd_valid & io.cmd_ready):
        m.d.comb += [busy_next.eq(io.cmd_count != 0),
                     in_range_next.eq(cmd_in_range)]
        m.d.sync += [
            word.eq(io.cmd_offset >> lane_bits),
            lane.eq(io.cmd_offset[:lane_bits] if lane_bits else 0),
            remaining.eq(io.cmd_count),
            index.eq(io.cmd_index),
            first.eq(1), user.eq(io.cmd_user),
        ]
        with m.If(io.cmd_count == 0):
            m.d.comb += err.eq(1)

    # Buffer update. A push never hits the entry being served: the buffer is either empty
    # (nothing served) or the push goes to another entry (at most N words buffered or in
    # flight).
    with m.If(landed):
        for i in range(N):
            with m.If(wr_ptr == i):
                m.d.sync += metas[i].eq(landed_meta)
                m.d.sync += [words[i][k].eq(read_data[k]) for k in range(n)]
        m.d.sync += wr_ptr.eq(Mux(wr_ptr == N - 1, 0, wr_ptr + 1))
    with m.If(pop):
        m.d.sync += rd_ptr.eq(rd_ptr_after)
    with m.Elif(take):
        for i in range(N):
            with m.If(rd_ptr == i):
                m.d.sync += [metas[i].lane.eq(head.lane + 1),
                             metas[i].at_last.eq(head.lane + 1 == head.lane_last),
                             metas[i].index.eq(head.index + 1), metas[i].first.eq(0)]
    occ_next = Signal.like(occ, name=f"{name}_occ_next")
    at_last_next = [Signal(name=f"{name}_at_last_next{i}") for i in range(N)]
    m.d.comb += occ_next.eq(occ + landed - pop)
    for i in range(N):      # each entry's `at_last` after this cycle's updates
        m.d.comb += at_last_next[i].eq(metas[i].at_last)
        with m.If(landed & (wr_ptr == i)):
            m.d.comb += at_last_next[i].eq(landed_meta.at_last)
        with m.If(take & ~pop & (rd_ptr == i)):
            m.d.comb += at_last_next[i].eq(head.lane + 1 == head.lane_last)
    m.d.sync += [
        occ.eq(occ_next),
        head_pops.eq(head_pops_next),
    ]
    m.d.comb += head_pops_next.eq((occ_next != 0) &
                                  Array(at_last_next)[Mux(pop, rd_ptr_after, rd_ptr)])
    return io
