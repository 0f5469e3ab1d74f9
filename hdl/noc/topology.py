"""Mesh topology, routing functions and the deadlock check, in plain Python.

Nothing here builds hardware. The router generator asks this module which turns the routing
function can take (to size the crossbar) and, before it generates anything, whether the routing
function is deadlock-free on the topology with the configured virtual channels
(:func:`check_deadlock_free`, Dally & Seitz's channel-dependency-graph condition: a routing
function is deadlock-free if the graph whose vertices are the (link, virtual channel) pairs and
whose edges are "a packet holding this channel may wait for that one" has no cycle).

Coordinates: node ``(x, y)``, ``x`` grows to the East, ``y`` grows to the North; node id
``y * width + x``. Ports: N, E, S, W, L (local) = 0..4.
"""

from dataclasses import dataclass


__all__ = [
    "N", "E", "S", "W", "L", "PORTS", "PORT_NAMES", "OPPOSITE", "DELTA",
    "DeadlockError", "MeshTopology", "ROUTING_FUNCTIONS", "xy_route", "yx_route",
    "minimal_adaptive_route", "channel_dependency_graph", "find_cycle", "check_deadlock_free",
    "allowed_turns",
]

N, E, S, W, L = range(5)
PORTS = (N, E, S, W, L)
PORT_NAMES = ("N", "E", "S", "W", "L")
OPPOSITE = {N: S, S: N, E: W, W: E, L: L}
DELTA = {N: (0, 1), E: (1, 0), S: (0, -1), W: (-1, 0)}


class DeadlockError(ValueError):
    """The routing function's channel-dependency graph has a cycle: the network can deadlock."""


@dataclass(frozen=True)
class MeshTopology:
    """An X x Y mesh: router (x, y) has a link to each existing neighbour, plus its local port."""

    width: int
    height: int

    def __post_init__(self):
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MeshTopology.{name} must be a positive integer; got {value!r}")

    @property
    def nodes(self):
        return [(x, y) for y in range(self.height) for x in range(self.width)]

    def node_id(self, node):
        x, y = node
        return y * self.width + x

    def contains(self, node):
        x, y = node
        return 0 <= x < self.width and 0 <= y < self.height

    def neighbour(self, node, port):
        """The router at the far end of ``node``'s output ``port``, or None (mesh edge / local)."""
        if port == L:
            return None
        dx, dy = DELTA[port]
        other = (node[0] + dx, node[1] + dy)
        return other if self.contains(other) else None

    def links(self):
        """Every directed router-to-router link as (node, output port)."""
        return [(node, p) for node in self.nodes for p in (N, E, S, W)
                if self.neighbour(node, p) is not None]

    def hops(self, src, dst):
        """Router-to-router hops of a minimal route."""
        return abs(src[0] - dst[0]) + abs(src[1] - dst[1])


def _dimension_order(node, dst, x_first):
    (x, y), (dx, dy) = node, dst
    step_x = E if dx > x else W if dx < x else None
    step_y = N if dy > y else S if dy < y else None
    for step in ((step_x, step_y) if x_first else (step_y, step_x)):
        if step is not None:
            return (step,)
    return (L,)


def xy_route(node, dst):
    """Dimension-order routing, X first: the single output port at ``node`` towards ``dst``."""
    return _dimension_order(node, dst, x_first=True)


def yx_route(node, dst):
    """Dimension-order routing, Y first."""
    return _dimension_order(node, dst, x_first=False)


def minimal_adaptive_route(node, dst):
    """Unrestricted minimal adaptive routing: every productive direction (on any VC). Not
    deadlock-free on a mesh with cycles; here so the deadlock check has something to refuse."""
    (x, y), (dx, dy) = node, dst
    ports = []
    if dx > x:
        ports.append(E)
    if dx < x:
        ports.append(W)
    if dy > y:
        ports.append(N)
    if dy < y:
        ports.append(S)
    return tuple(ports) or (L,)


ROUTING_FUNCTIONS = {"xy": xy_route, "yx": yx_route, "adaptive": minimal_adaptive_route}


def _routing(routing):
    if callable(routing):
        return routing
    try:
        return ROUTING_FUNCTIONS[routing]
    except KeyError:
        raise ValueError(f"routing must be one of {', '.join(ROUTING_FUNCTIONS)}; "
                         f"got {routing!r}") from None


def _walk(topology, route, src, dst):
    """Every (node, input port, output port) a packet from ``src`` to ``dst`` can visit."""
    seen = set()
    stack = [(src, L)]
    while stack:
        node, in_port = stack.pop()
        for out_port in route(node, dst):
            step = (node, in_port, out_port)
            if step in seen:
                continue
            seen.add(step)
            if out_port == L:
                continue
            nxt = topology.neighbour(node, out_port)
            if nxt is None:
                raise ValueError(f"routing function sends a packet for {dst} off the mesh at "
                                 f"{node} through port {PORT_NAMES[out_port]}")
            stack.append((nxt, OPPOSITE[out_port]))
    return seen


def allowed_turns(topology, routing="xy"):
    """The set of (input port, output port) pairs the routing function uses anywhere on the
    topology (the crossbar connections a router needs)."""
    route = _routing(routing)
    turns = set()
    for src in topology.nodes:
        for dst in topology.nodes:
            turns |= {(i, o) for _, i, o in _walk(topology, route, src, dst)}
    return turns


def channel_dependency_graph(topology, routing="xy", vcs=2, *, same_vc=False):
    """The channel-dependency graph: ``{channel: set(channels)}`` with a channel being
    ``(node, output port, vc)`` of a router-to-router link.

    By default the routers' VC allocator may give a packet any free VC of the output port it
    asked for, so a packet that holds any VC of the link into ``node`` may wait for any VC of
    the next link. With ``same_vc`` (in-order mode) a packet keeps its VC: VC v only waits for
    VC v.
    """
    route = _routing(routing)
    if not isinstance(vcs, int) or vcs < 1:
        raise ValueError(f"vcs must be a positive integer; got {vcs!r}")
    graph = {(node, p, v): set() for node, p in topology.links() for v in range(vcs)}
    link_deps = set()
    for src in topology.nodes:
        for dst in topology.nodes:
            for node, in_port, out_port in _walk(topology, route, src, dst):
                if in_port == L or out_port == L:
                    continue            # injection/ejection channels end no cycle
                upstream = topology.neighbour(node, in_port)
                link_deps.add(((upstream, OPPOSITE[in_port]), (node, out_port)))
    for (a_node, a_port), (b_node, b_port) in link_deps:
        for va in range(vcs):
            graph[(a_node, a_port, va)].update(
                (b_node, b_port, vb) for vb in ((va,) if same_vc else range(vcs)))
    return graph


def find_cycle(graph):
    """A cycle of the directed graph as a list of vertices, or None (iterative DFS)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {v: WHITE for v in graph}
    for root in graph:
        if colour[root] != WHITE:
            continue
        path = [root]
        iters = [iter(sorted(graph[root]))]
        colour[root] = GREY
        while iters:
            for nxt in iters[-1]:
                if colour[nxt] == GREY:
                    return path[path.index(nxt):] + [nxt]
                if colour[nxt] == WHITE:
                    colour[nxt] = GREY
                    path.append(nxt)
                    iters.append(iter(sorted(graph[nxt])))
                    break
            else:
                colour[path.pop()] = BLACK
                iters.pop()
    return None


def _channel_name(channel):
    (x, y), port, vc = channel
    return f"({x},{y}).{PORT_NAMES[port]}.vc{vc}"


def check_deadlock_free(topology, routing="xy", vcs=2, *, same_vc=False):
    """Raise :class:`DeadlockError` (showing a cycle) unless the channel-dependency graph of
    ``routing`` on ``topology`` with ``vcs`` virtual channels is acyclic. Returns the graph."""
    graph = channel_dependency_graph(topology, routing, vcs, same_vc=same_vc)
    cycle = find_cycle(graph)
    if cycle is not None:
        name = routing if isinstance(routing, str) else getattr(routing, "__name__", "routing")
        shown = " -> ".join(_channel_name(c) for c in cycle[:9])
        if len(cycle) > 9:
            shown += " -> ..."
        raise DeadlockError(
            f"routing {name!r} is not deadlock-free on a {topology.width}x{topology.height} mesh "
            f"with {vcs} VC(s): its channel-dependency graph has a cycle: {shown}")
    return graph
