"""Mesh topology, routing functions and the channel-dependency-graph deadlock check (pure
Python, no simulation)."""

import itertools

import pytest

from systolica.config import ConfigError, NocConfig
from systolica.hdl.noc.topology import (
    E, L, N, S, W, DeadlockError, MeshTopology, allowed_turns, channel_dependency_graph,
    check_deadlock_free, find_cycle, minimal_adaptive_route, xy_route, yx_route)


def follow(topo, route, src, dst):
    """The node sequence a deterministic routing function takes from src to dst."""
    path, node = [src], src
    for _ in range(topo.width + topo.height + 2):
        (port,) = route(node, dst)
        if port == L:
            return path
        node = topo.neighbour(node, port)
        assert node is not None, f"{route.__name__} left the mesh going {src}->{dst}"
        path.append(node)
    raise AssertionError(f"{route.__name__} did not reach {dst} from {src}")


@pytest.mark.parametrize("route", [xy_route, yx_route])
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (3, 2), (4, 4)])
def test_dimension_order_routes_are_minimal(route, shape):
    topo = MeshTopology(*shape)
    for src, dst in itertools.product(topo.nodes, repeat=2):
        path = follow(topo, route, src, dst)
        assert path[-1] == dst
        assert len(path) - 1 == topo.hops(src, dst)


def test_xy_goes_x_first():
    topo = MeshTopology(4, 4)
    assert follow(topo, xy_route, (0, 0), (2, 3)) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2),
                                                       (2, 3)]
    assert follow(topo, yx_route, (0, 0), (2, 3)) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3),
                                                       (2, 3)]


def test_mesh_neighbours_and_links():
    topo = MeshTopology(3, 2)
    assert topo.neighbour((0, 0), N) == (0, 1)
    assert topo.neighbour((0, 0), E) == (1, 0)
    assert topo.neighbour((0, 0), S) is None
    assert topo.neighbour((0, 0), W) is None
    assert topo.neighbour((2, 1), L) is None
    # 3x2: 2 horizontal links per row x 2 rows + 3 vertical, each in both directions.
    assert len(topo.links()) == 2 * (2 * 2 + 3)
    with pytest.raises(ValueError, match="width"):
        MeshTopology(0, 2)


def test_xy_turns_never_leave_the_y_dimension():
    turns = allowed_turns(MeshTopology(4, 4), "xy")
    # A packet travelling north/south (entering from S/N) never turns east/west.
    for i, o in turns:
        if i in (N, S):
            assert o in (N, S, L) and o != i
    assert (W, E) in turns and (L, L) in turns and (S, N) in turns
    assert (N, E) not in turns and (S, W) not in turns
    # YX is the mirror image.
    yx = allowed_turns(MeshTopology(4, 4), "yx")
    assert (N, E) in yx and (W, N) not in yx


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (4, 4), (8, 8), (5, 2)])
@pytest.mark.parametrize("routing", ["xy", "yx"])
@pytest.mark.parametrize("vcs", [1, 2, 4])
def test_dimension_order_is_deadlock_free(shape, routing, vcs):
    graph = check_deadlock_free(MeshTopology(*shape), routing, vcs)
    assert find_cycle(graph) is None
    # Every link/VC pair is a vertex.
    assert len(graph) == len(MeshTopology(*shape).links()) * vcs


@pytest.mark.parametrize("vcs", [1, 2])
@pytest.mark.parametrize("same_vc", [False, True])
def test_unrestricted_adaptive_routing_is_refused(vcs, same_vc):
    with pytest.raises(DeadlockError, match="not deadlock-free.*cycle"):
        check_deadlock_free(MeshTopology(2, 2), "adaptive", vcs, same_vc=same_vc)
    with pytest.raises(DeadlockError):
        check_deadlock_free(MeshTopology(3, 3), minimal_adaptive_route, vcs)


def test_adaptive_cycle_is_a_real_turn_cycle():
    """The reported cycle is a closed walk of dependencies in the graph."""
    graph = channel_dependency_graph(MeshTopology(2, 2), "adaptive", 1)
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) >= 5
    for a, b in zip(cycle, cycle[1:]):
        assert b in graph[a]


def test_adaptive_on_a_line_is_deadlock_free():
    """On a 1-D mesh minimal adaptive routing has only one choice: no cycle."""
    check_deadlock_free(MeshTopology(5, 1), "adaptive", 1)


def test_xy_dependencies_only_follow_allowed_turns():
    graph = channel_dependency_graph(MeshTopology(3, 3), "xy", 1)
    for ((x, y), port, _), targets in graph.items():
        for (nx, ny), nport, _ in targets:
            if port in (N, S):
                assert nport == port    # a Y-direction packet never turns to X under XY


def test_find_cycle_small_graphs():
    assert find_cycle({1: {2}, 2: {3}, 3: set()}) is None
    cycle = find_cycle({1: {2}, 2: {3}, 3: {1}})
    assert cycle[0] == cycle[-1] and set(cycle) == {1, 2, 3}
    assert find_cycle({1: {1}}) == [1, 1]


def test_routing_off_the_mesh_is_an_error():
    def bad(node, dst):
        return (W,)
    with pytest.raises(ValueError, match="off the mesh"):
        channel_dependency_graph(MeshTopology(2, 2), bad, 1)
    with pytest.raises(ValueError, match="routing must be one of"):
        check_deadlock_free(MeshTopology(2, 2), "zigzag", 1)


def test_noc_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match=r"NocConfig\.vcs must be in \[2, 8\]"):
        NocConfig(vcs=1)
    with pytest.raises(ConfigError, match=r"NocConfig\.buffer_depth"):
        NocConfig(buffer_depth=1)
    with pytest.raises(ConfigError, match=r"NocConfig\.width"):
        NocConfig(width=0)
    with pytest.raises(ConfigError, match=r"NocConfig\.routing must be one of"):
        NocConfig(routing="west-first")
    with pytest.raises(ConfigError, match=r"NocConfig\.in_order must be true or false"):
        NocConfig(in_order=1)
