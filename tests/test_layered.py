"""The pure-Python layered layout: what a drawing relies on, checked over hand-written and random flows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_view import NESTED

from flowmagic import Flow
from flowmagic.flow.shape import Cluster, Node, Shape, shape_of
from flowmagic.view.layered import ARROW, layered
from flowmagic.view.layout import CLUSTER_LABEL, MARGIN, Box, Layout, layout, node_size

EPS = 0.05  # coordinates are rounded to hundredths


FAN = """\
src = 1
parallel fetch:
    u1 = src
    u2 = src
    u3 = src
parallel clean:
    c1 = u1
    c2 = u2
    c3 = u3
m = [g(z) for z in fetch]
out = clean
fin = [out, m]
"""

MAP = """\
items = load()
parallel:
    scores = [score(i) for i in items]
    tags = [tag(i) for i in items]
best = pick(scores, tags)
"""

INDEPENDENT = (
    "parallel:\n" + "".join(f"    s{i} = {i}\n" for i in range(40)) + "".join(f"t{i} = {i}\n" for i in range(10))
)

CHAIN = "s0 = 0\n" + "".join(f"s{i} = s{i - 1}\n" for i in range(1, 40))

PLAIN = """\
a = 1
b = 2
d = b
c = a
e = c
f = d
k = [e, f]
z = a
"""

BRANCHES = """\
z = 1
parallel p:
    p1 = z
    branch bb:
        p2 = z
        p3 = p2
        p4 = p3
    p5 = 2
last = p
"""

FLOWS = {
    "nested": NESTED,
    "fan": FAN,
    "map": MAP,
    "independent": INDEPENDENT,
    "chain": CHAIN,
    "plain": PLAIN,
    "branches": BRANCHES,
}


def shape_from(source: str) -> Shape:
    return shape_of(Flow.from_source(source))


def overlap(a: Box, b: Box) -> bool:
    return (
        a.x < b.x + b.width - EPS
        and b.x < a.x + a.width - EPS
        and a.y < b.y + b.height - EPS
        and (b.y < a.y + a.height - EPS)
    )


def inside(inner: Box, outer: Box, side: float, top: float) -> bool:
    return (
        inner.x - outer.x >= side - EPS
        and outer.x + outer.width - (inner.x + inner.width) >= side - EPS
        and inner.y - outer.y >= top - EPS
        and outer.y + outer.height - (inner.y + inner.height) >= side - EPS
    )


def overlapping_pairs(boxes: dict[str, Box]) -> list[tuple[str, str]]:
    """Sort and sweep, so a row of a thousand nodes is checked quickly."""
    found = []
    ordered = sorted(boxes.items(), key=lambda item: item[1].x)
    for i, (name, box) in enumerate(ordered):
        for other, obox in ordered[i + 1 :]:
            if obox.x >= box.x + box.width - EPS:
                break
            if overlap(box, obox):
                found.append((name, other))
    return found


def bezier(points: tuple[tuple[float, float], ...], steps: int = 12) -> list[tuple[float, float]]:
    out = []
    for i in range(0, len(points) - 1, 3):
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = points[i : i + 4]
        for k in range(steps + 1):
            t = k / steps
            u = 1 - t
            out.append(
                (
                    u**3 * ax + 3 * u * u * t * bx + 3 * u * t * t * cx + t**3 * dx,
                    u**3 * ay + 3 * u * u * t * by + 3 * u * t * t * cy + t**3 * dy,
                )
            )
    return out


def check(shape: Shape, lay: Layout) -> None:
    """Every property a drawing of ``shape`` relies on."""
    assert lay.engine == "layered"
    assert set(lay.nodes) == {n.name for n in shape.nodes}
    assert set(lay.clusters) == {c.id for c in shape.clusters}
    assert [(e.tail, e.head) for e in lay.edges] == list(shape.edges)

    for node in shape.nodes:
        box = lay.nodes[node.name]
        assert (box.width, box.height) == node_size(node), node.name
    assert overlapping_pairs(lay.nodes) == []

    # the canvas holds everything, with the margin
    for box in [*lay.nodes.values(), *lay.clusters.values()]:
        assert box.x >= MARGIN - EPS and box.y >= MARGIN - EPS
        assert box.x + box.width <= lay.width - MARGIN + EPS
        assert box.y + box.height <= lay.height - MARGIN + EPS
    for edge in lay.edges:
        for x, y in edge.points:
            assert MARGIN - EPS <= x <= lay.width - MARGIN + EPS and MARGIN - EPS <= y <= lay.height - MARGIN + EPS

    parent = {c.id: c.parent for c in shape.clusters}

    def ancestors(cid: str | None) -> set[str]:
        found = set()
        while cid is not None:
            found.add(cid)
            cid = parent[cid]
        return found

    for node in shape.nodes:
        box = lay.nodes[node.name]
        mine = ancestors(node.cluster)
        for cid, cbox in lay.clusters.items():
            if cid in mine:
                assert inside(box, cbox, 5, CLUSTER_LABEL), (node.name, cid)
            else:
                assert not overlap(box, cbox), (node.name, cid)
    for cluster in shape.clusters:
        if cluster.parent is not None:
            assert inside(lay.clusters[cluster.id], lay.clusters[cluster.parent], 5, CLUSTER_LABEL), cluster.id
        siblings = [c.id for c in shape.clusters if c.parent == cluster.parent and c.id != cluster.id]
        for other in siblings:
            assert not overlap(lay.clusters[cluster.id], lay.clusters[other]), (cluster.id, other)

    for edge in lay.edges:
        tail, head = lay.nodes[edge.tail], lay.nodes[edge.head]
        assert tail.y + tail.height < head.y, (edge.tail, edge.head)
        assert len(edge.points) % 3 == 1 and len(edge.points) >= 4
        assert edge.points[0] == pytest.approx((tail.x + tail.width / 2, tail.y + tail.height), abs=EPS)
        assert edge.tip == pytest.approx((head.x + head.width / 2, head.y), abs=EPS)
        assert edge.points[-1] == pytest.approx((edge.tip[0], edge.tip[1] - ARROW), abs=EPS)
        ys = [y for _, y in edge.points]
        assert ys == sorted(ys), "an edge only goes down"


def check_edges_avoid_nodes(lay: Layout) -> None:
    for edge in lay.edges:
        for name, box in lay.nodes.items():
            if name in (edge.tail, edge.head):
                continue
            for x, y in bezier(edge.points):
                assert not (box.x + 1 < x < box.x + box.width - 1 and box.y + 1 < y < box.y + box.height - 1), (
                    edge.tail,
                    edge.head,
                    name,
                )


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_properties(name: str) -> None:
    shape = shape_from(FLOWS[name])
    lay = layered(shape)
    check(shape, lay)
    check_edges_avoid_nodes(lay)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_deterministic(name: str) -> None:
    assert layered(shape_from(FLOWS[name])) == layered(shape_from(FLOWS[name]))


def test_deterministic_across_hash_seeds() -> None:
    script = (
        "from flowmagic import Flow; from flowmagic.flow.shape import shape_of; "
        "from flowmagic.view.layered import layered; import sys; "
        "print(repr(layered(shape_of(Flow.from_source(sys.stdin.read())))))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=NESTED + FAN.replace("src", "a2"),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("name", ["nested", "fan", "map", "branches"])
def test_same_boxes_as_dot(name: str) -> None:
    shape = shape_from(FLOWS[name])
    ours, theirs = layered(shape), layout(shape, "dot")
    assert set(ours.nodes) == set(theirs.nodes)
    assert set(ours.clusters) == set(theirs.clusters)
    assert [(e.tail, e.head) for e in ours.edges] == [(e.tail, e.head) for e in theirs.edges]


def test_layout_dispatches_to_it() -> None:
    shape = shape_from(NESTED)
    assert layout(shape, "layered") == layered(shape)


def test_empty_shape() -> None:
    lay = layered(Shape("empty", (), (), ()))
    assert lay.nodes == {} and lay.clusters == {} and lay.edges == ()
    assert 0 < lay.width <= 4 * MARGIN and 0 < lay.height <= 4 * MARGIN


def test_rows_follow_dependencies() -> None:
    lay = layered(shape_from(CHAIN))
    ys = [lay.nodes[f"s{i}"].y for i in range(40)]
    assert ys == sorted(ys) and len(set(ys)) == 40
    # a chain is drawn straight
    assert len({lay.nodes[f"s{i}"].x for i in range(40)}) == 1
    # rows leave room for an edge
    assert lay.nodes["s1"].y - (lay.nodes["s0"].y + lay.nodes["s0"].height) >= 25


def test_independent_steps_share_a_row() -> None:
    lay = layered(shape_from(INDEPENDENT))
    assert len({box.y for box in lay.nodes.values()}) == 1
    # packed: no wider than the boxes, their gaps and the cluster's border
    boxes = sum(box.width for box in lay.nodes.values())
    assert lay.width < boxes + 50 * 20 + 6 * MARGIN


def test_crossing_removed() -> None:
    # declared so that a -> c and b -> d cross; the sweeps untangle them
    lay = layered(shape_from("a = 1\nb = 2\nd = b\nc = a\n"))
    assert (lay.nodes["a"].x < lay.nodes["b"].x) == (lay.nodes["c"].x < lay.nodes["d"].x)


def test_parent_centred_over_children() -> None:
    lay = layered(shape_from("a = 1\nb = a\nc = a\nd = a\ne = [b, c, d]\n"))
    centre = {name: box.x + box.width / 2 for name, box in lay.nodes.items()}
    assert centre["a"] == pytest.approx(centre["c"], abs=1)
    assert centre["e"] == pytest.approx(centre["c"], abs=1)
    assert centre["b"] < centre["c"] < centre["d"]


def test_input_waits_above_its_use() -> None:
    lay = layered(shape_from("a = 1\nb = a\nc = b\nk = 5\nd = [c, k]\n"))
    assert lay.nodes["k"].y == lay.nodes["c"].y


def test_map_rows_fit_the_tallest_node() -> None:
    shape = shape_from(MAP)
    lay = layered(shape)
    scores, items = lay.nodes["scores"], lay.nodes["items"]
    assert scores.height > items.height  # a map is taller: the row makes room for it
    check(shape, lay)


def test_thousand_steps() -> None:
    for source in (
        "".join(f"s{i} = {i}\n" for i in range(1000)),
        "s0 = 0\n" + "".join(f"s{i} = s{i - 1}\n" for i in range(1, 1000)),
    ):
        shape = shape_from(source)
        lay = layered(shape)
        assert len(lay.nodes) == 1000
        assert overlapping_pairs(lay.nodes) == []


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    """Random DAGs with random nested clusters, each holding at least one node."""
    n = draw(st.integers(1, 14))
    ids: list[str] = []
    clusters = []
    for k in range(draw(st.integers(0, min(5, n)))):
        outer = draw(st.sampled_from([None, *ids]))
        ids.append(f"cluster_{k}")
        clusters.append(Cluster(ids[-1], f"parallel {'g' * draw(st.integers(1, 30))}", "group", outer))
    nodes = []
    edges = []
    for v in range(n):
        home = ids[v] if v < len(ids) else draw(st.sampled_from([None, *ids]))
        kind = draw(st.sampled_from(["call", "llm", "map"]))
        nodes.append(Node(f"n{v}" + "x" * draw(st.integers(0, 12)) if v % 3 == 0 else f"n{v}", kind, home))
        if v:
            for dep in draw(st.lists(st.integers(0, v - 1), unique=True, max_size=3)):
                edges.append((dep, v))
    names = [node.name for node in nodes]
    return Shape("random", tuple(nodes), tuple((names[a], names[b]) for a, b in edges), tuple(clusters))


@settings(max_examples=80, deadline=None)
@given(shapes())
def test_random_shapes(shape: Shape) -> None:
    lay = layered(shape)
    check(shape, lay)
    check_edges_avoid_nodes(lay)
    assert layered(shape) == lay
