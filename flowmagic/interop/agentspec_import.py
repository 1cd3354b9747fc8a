"""An Agent Spec flow as flowmagic DSL text plus a namespace.

The document's root is a flow, or one node as a flow of one step (``agentspec_roots``).
The translation follows the flow's control flow from its ``StartNode``
(``agentspec_paths``) and writes one DSL step per node output, named after the output
(``user_info``, ``current_time``, ...), so the Run reads like the file; what each kind
of node becomes is in ``agentspec_kinds``. Each node reads what its data-flow edges
bring (``agentspec_values``). A flow's outputs are what its ``EndNode`` reads, as
WayFlow gives them: of two nodes that give ``output_message``, the one the EndNode's
edge comes from (the one that runs last, when both do) writes ``output_message``, the
other a fresh name. flowmagic then runs every step as soon as what it reads is ready:
nodes that only follow each other on the control-flow path, with no data between them,
may overlap.

- A ``BranchingNode`` whose branches meet again is an ``if/elif/else`` block: one arm
  per next node, testing the value the node reads against the ``mapping`` 's values
  (``if kind == 'bug':``), the ``default`` branch its ``else``. A value read after the
  block that the arms give (a data edge from each) is one name, assigned in every arm.
- A ``BranchingNode`` that goes back to an earlier node (maybe through nodes after it) is
  a ``for`` loop from that node, which ``break`` s on the branches that leave it, of at
  most the rounds its ``metadata.flowmagic.rounds`` says (flowmagic's export writes the
  bound of its ``range`` there) or :data:`LOOP_ROUNDS`. A value a node reads from the
  round before (or, the first time, from before the loop or its default) is carried
  under one name.

Anything else is an :class:`AgentSpecError` naming the component. Text from the
file reaches the DSL only as identifiers (checked) and ``repr()`` string literals;
values (input defaults) go into the namespace, never into the text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..flow.loops import MAX_ITERATIONS
from .agentspec import AgentSpecError
from .agentspec_components import NODES
from .agentspec_kinds import NodeKinds
from .agentspec_paths import EXIT, Choice, Cycle, Part, nodes_in, shape
from .agentspec_renames import outside
from .agentspec_roots import check_flow, root_flow, unsupported
from .agentspec_text import Component, IfBlock, Item, Line, Loop, describe, render, titles
from .agentspec_values import Key, Values

#: The most rounds of a loop (a BranchingNode that goes back) whose metadata sets none: Agent Spec has no bound.
LOOP_ROUNDS = 10
BRANCHING_INPUT = "branching_mapping_key"  # a BranchingNode's input when it names none


def translate(
    document: Component, tools: dict[str, Callable[..., Any]], model: str | None
) -> tuple[str, dict[str, Any], str]:
    root = root_flow(document)
    translator = _Translator(tools, model)
    try:
        items, _ = translator.flow(root, env=None)
    except (KeyError, TypeError, AttributeError) as exc:  # a field missing or of the wrong kind
        raise AgentSpecError(f"malformed Agent Spec document ({type(exc).__name__}: {exc})") from exc
    if not items:
        raise AgentSpecError(f"Agent Spec flow '{root.get('name')}' has no node flowmagic can run")
    return "\n".join(render(items, 0)) + "\n", translator.namespace, str(root.get("name") or "flow")


class _Translator(NodeKinds):
    def flow(
        self, flow: Component, env: dict[str, str] | None, want: dict[str, str] | None = None
    ) -> tuple[list[Item], dict[str, str]]:
        """The items of ``flow`` and its outputs (title -> DSL name).

        ``env`` gives the DSL names of its inputs; ``None`` for the top flow, whose
        inputs become the flow's inputs (named as in the file), and whose outputs are
        named as in the file. ``want`` gives names chosen for some of its outputs.
        """
        start = check_flow(flow).get("start_node")
        if not isinstance(start, dict) or start.get("component_type") != "StartNode":
            raise AgentSpecError(f"{describe(flow)} has no StartNode")
        for node in flow.get("nodes") or []:
            if isinstance(node, dict) and node.get("component_type") not in NODES:
                raise unsupported(node, flow)
        parts = shape(flow, start)
        values = Values(flow, start, top=env is None)
        for prop in [*(start.get("outputs") or []), *(start.get("inputs") or [])]:
            title = str(prop.get("title"))
            if (start["id"], title) in values.produced:
                continue
            if env is not None and title in env:
                name = env[title]
            elif env is None:
                name = self.names.new(title)
                self.inputs.add(name)
                if "default" in prop:
                    self.namespace[name] = prop["default"]
            elif "default" in prop:
                name = self.constant(title, prop["default"])
            else:
                raise AgentSpecError(f"flow '{flow.get('name')}' needs input '{title}', which nothing gives it")
            values.produce((start["id"], title), name)
            self.schemas.setdefault(name, prop)
        for provider in flow.get("context_providers") or []:  # constants (checked): what reads one reads its value
            for title in titles(provider.get("outputs")):
                values.produce((provider["id"], title), self.constant(title, provider.get("value")))
        reserved = self.reserve(values, parts, want or {})
        outer, self.forced = self.forced, {}  # the node whose subflow this is chose names for its own outputs
        try:
            items = self.parts(parts, values)
            outputs = {t: self.reader(values, values.end, EXIT)(t) for t in values.outputs}
        finally:
            self.forced = outer
        for title, name in outputs.items():  # each output of the flow under its own name, as the runtime gives it
            wanted = reserved.get(title)
            if wanted is not None and wanted != name and name not in self.inputs:
                items.append(Line(f"{wanted} = {name}"))
        return items, outputs

    def reserve(self, values: Values, parts: list[Part], want: dict[str, str]) -> dict[str, str]:
        """The names of the flow's outputs, kept for the values its EndNode reads: those of ``want``
        (chosen by the node whose subflow this is), or each output's title when it is free.

        An output is the value its sources gave last (two nodes may give ``output_message``: the
        flow's is the later one's), so the node that gives it last on the main path writes the
        name (or, in an ``if`` block, every arm that gives it); another gives it a fresh name.
        """
        order = {ident: i for i, ident in enumerate(_leaving_order(parts))}
        in_arms = set(_in_arms(parts))
        reserved: dict[str, str] = {}
        for title in values.outputs:
            if title in want:
                name = want[title]
            elif title in self.names.used:  # an input of the flow given back as it is, or a name taken
                continue
            else:
                name = self.names.new(title)
            reserved[title] = name
            sources = [s for s in values.incoming.get((EXIT, title), []) if s[0] in order]
            if not sources:
                continue
            last = max(sources, key=lambda s: order[s[0]])
            if last[0] not in in_arms:
                values.forced.setdefault(last, name)
            else:
                values.wanted.setdefault((EXIT, title), name)
        return reserved

    def parts(self, parts: list[Part], values: Values) -> list[Item]:
        items: list[Item] = []
        for part in parts:
            if isinstance(part, Choice):
                items.extend(self.choice(part, values))
            elif isinstance(part, Cycle):
                items.extend(self.cycle(part, values))
            else:
                items.extend(self.component(part, values))
        return items

    def component(self, node: Component, values: Values) -> list[Item]:
        self.forced = values.forced_for(node)
        new = self.node(node, self.reader(values, node))
        self.forced = {}
        items = list(new.items)
        props = {p.get("title"): p for p in node.get("outputs") or [] if isinstance(p, dict)}
        for title, name in new.outputs.items():
            chosen = values.forced.get((node["id"], title))
            if chosen is not None and chosen != name:  # written under a name of its own: copy it
                items.append(Line(f"{chosen} = {name}"))
                name = chosen
            values.produce((node["id"], title), name)
            self.schemas.setdefault(name, props.get(title, {}))
        values.done.add(node["id"])
        return items

    def reader(self, values: Values, node: Component, ident: str | None = None) -> Callable[[str], str]:
        """What reads the DSL name of each input of ``node`` (``ident``: its id, if not its own)."""
        ident = node["id"] if ident is None else ident

        def value(title: str) -> str:
            name = values.read({**node, "id": ident} if ident != node.get("id") else node, title)
            if name is not None:
                return name
            found, default = values.default((ident, title))
            if found:
                return self.constant(title, default)
            raise AgentSpecError(f"{describe(node)}: nothing gives its input '{title}'")

        return value

    # -- branches -------------------------------------------------------------------------------
    def key(self, node: Component, values: Values) -> str:
        """The DSL name of the value a BranchingNode reads."""
        self.check_mappings(node)
        title = (titles(node.get("inputs")) or [outside(node, "input_mapping", BRANCHING_INPUT)])[0]
        return self.reader(values, node)(title)

    def choice(self, part: Choice, values: Values) -> list[Item]:
        """An ``if`` block: each arm, and one name for each value read after it that the arms give."""
        node = part.node
        key = self.key(node, values)
        values.done.add(node["id"])
        in_order = [list(nodes_in(arm)) for _, arm in part.arms]
        arm_ids = [set(ids) for ids in in_order]
        inside = set().union(*arm_ids)
        # each value read after the block that an arm gives: one name, assigned in every arm
        joins: dict[Key, tuple[str, list[Key]]] = {}
        named: dict[frozenset[Key], str] = {}
        for dest, sources in values.reads_from(i for ids in in_order for i in ids):
            if dest[0] in inside or dest[0] in values.done or dest in values.carried:
                continue
            name = named.get(frozenset(sources))
            if name is None:  # the name a block around this one gave it, or a new one
                name = values.wanted.get(dest) or self.names.new(next(s for s in sources if s[0] in inside)[1])
                named[frozenset(sources)] = name
                for (_, arm), ids in zip(part.arms, arm_ids, strict=True):
                    mine = [s for s in sources if s[0] in ids]
                    if len(mine) == 1 and any(p is not None and p.get("id") == mine[0][0] for p in _nodes(arm)):
                        values.forced.setdefault(mine[0], name)  # the one node that gives it writes the name
            joins[dest] = (name, sources)
        outer = {dest: values.wanted.get(dest) for dest in joins}
        values.wanted.update({dest: name for dest, (name, _) in joins.items()})
        arms: list[tuple[tuple[str, ...] | None, list[Item]]] = []
        partial: set[Key] = set()
        for (vals, arm), ids in zip(part.arms, arm_ids, strict=True):
            before = {dest: values.resolved.get(dest) for dest in joins}
            items = self.parts(arm, values)
            copied: set[str] = set()
            for dest, (name, sources) in joins.items():
                joined = values.resolved.pop(dest, None)  # set when a block inside the arm joined it
                if before[dest] is not None:
                    values.resolved[dest] = before[dest]  # type: ignore[assignment]
                given = joined if joined != before[dest] else None
                given = given or values.latest([s for s in sources if s[0] in ids])
                given = given or self.fallback(values, dest, [s for s in sources if s[0] not in inside])
                if given is None:
                    if dest[0] == EXIT and values.top:  # an output of the flow imported: nothing reads it
                        partial.add(dest)
                        continue
                    branch = "default" if vals is None else ", ".join(repr(v) for v in vals)
                    raise AgentSpecError(
                        f"{describe(values.component(dest[0]))} reads '{dest[1]}', which {describe(node)} gives "
                        f"on some of its branches only (not on {branch})"
                    )
                if given != name and name not in copied:
                    items.append(Line(f"{name} = {given}"))
                    copied.add(name)
            arms.append((vals, items))
        for dest, (name, _) in joins.items():
            if dest not in partial:
                values.resolved[dest] = name
            if outer[dest] is None:
                del values.wanted[dest]
            else:
                values.wanted[dest] = outer[dest]  # type: ignore[assignment]
        return _if_block(key, arms)

    def fallback(self, values: Values, dest: Key, sources: list[Key]) -> str | None:
        """The DSL name of what ``dest`` reads when a branch (or the loop's first round) does not give it:
        the value from before, or its default."""
        name = values.latest(sources)
        if name is not None:
            return name
        found, default = values.default(dest)
        return self.constant(dest[1], default) if found else None

    # -- loops ------------------------------------------------------------------------------------
    def cycle(self, part: Cycle, values: Values) -> list[Item]:
        """A ``for`` loop: the body, a ``break`` on the branches that leave, then the way back."""
        order = [*nodes_in(part.body), part.node["id"], *nodes_in(part.then)]
        position = {ident: i for i, ident in enumerate(order)}
        direct = {p["id"] for p in [*part.body, *part.then] if isinstance(p, dict)}
        before: list[Item] = []
        started: set[str] = set()
        names: dict[frozenset[Key], str] = {}  # the nodes of the round that give a carried value: its name
        for dest, sources in values.reads_from(order):
            mine = [s for s in sources if s[0] in position]
            if dest[0] not in position or not mine or any(position[s[0]] < position[dest[0]] for s in mine):
                continue
            # read before any node of the round gives it: the round before's value, carried
            last = max(mine, key=lambda s: position[s[0]])
            reader = describe(values.component(dest[0]))
            carried = values.forced.get(last) or self.names.new(last[1])
            # given on the main path: its last node writes the name; given in an if block: each arm that gives it
            for source in [last] if last[0] in direct else [s for s in mine if s[0] not in direct]:
                values.forced[source] = carried
            names[frozenset(mine)] = carried
            if carried not in started:  # its value for the first round, from before the loop
                started.add(carried)
                first = self.fallback(values, dest, [s for s in sources if s[0] not in position])
                if first is None:
                    raise AgentSpecError(f"{reader} reads '{dest[1]}' before any node gives it, and it has no default")
                before.append(Line(f"{carried} = {first}"))
            values.resolved[dest] = carried
        # what reads the same nodes of the round later on, or after the loop, reads the name too: it holds
        # the value they gave last (an if block in the loop makes no name of its own for it)
        for dest, sources in values.reads_from(order):
            carried_name = names.get(frozenset(s for s in sources if s[0] in position))
            if carried_name is not None and dest not in values.resolved:
                values.resolved[dest] = carried_name
                values.carried.add(dest)
        body = self.parts(part.body, values)
        key = self.key(part.node, values)
        values.done.add(part.node["id"])
        leaving = _test(key, part.leave) if part.stay_default else _test(key, part.stay, negated=True)
        body.append(IfBlock([(leaving, [Line("break")])]))
        body.extend(self.parts(part.then, values))
        values.again(nodes_in(part.body))  # what is read after the loop: its last round's body gave it last
        return [*before, Loop(self.names.new("attempt"), _rounds(part.node), body)]


def _rounds(node: Component) -> int:
    """The bound of the loop ``node`` leaves: its ``metadata.flowmagic.rounds``, or :data:`LOOP_ROUNDS`."""
    metadata = node.get("metadata")
    ours = metadata.get("flowmagic") if isinstance(metadata, dict) else None
    rounds = ours.get("rounds") if isinstance(ours, dict) else None
    if rounds is None:
        return LOOP_ROUNDS
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ITERATIONS:
        raise AgentSpecError(
            f"{describe(node)}: its metadata.flowmagic.rounds must be a whole number from 1 to {MAX_ITERATIONS}, "
            f"not {rounds!r}"
        )
    return rounds


def _leaving_order(parts: list[Part]) -> Iterator[str]:
    """The ids of the nodes in ``parts`` in the order they have last given their values when the flow
    leaves them: a loop's way back before its body (its last round leaves after the body)."""
    for part in parts:
        if isinstance(part, Cycle):
            yield from _leaving_order(part.then)
            yield from _leaving_order(part.body)
            yield part.node["id"]
        elif isinstance(part, Choice):
            yield part.node["id"]
            for _, arm in part.arms:
                yield from _leaving_order(arm)
        else:
            yield part["id"]


def _in_arms(parts: list[Part]) -> Iterator[str]:
    """The ids of the nodes in an arm of an ``if`` block among ``parts``."""
    for part in parts:
        if isinstance(part, Choice):
            for _, arm in part.arms:
                yield from nodes_in(arm)
        elif isinstance(part, Cycle):
            yield from _in_arms([*part.body, *part.then])


def _nodes(parts: list[Part]) -> list[Component | None]:
    """The nodes directly in ``parts`` (None for a block)."""
    return [p if isinstance(p, dict) else None for p in parts]


def _test(key: str, values: tuple[str, ...], negated: bool = False) -> str:
    if len(values) == 1:
        return f"{key} {'!=' if negated else '=='} {values[0]!r}"
    return f"{key} {'not in' if negated else 'in'} ({', '.join(repr(v) for v in values)})"


def _if_block(key: str, arms: list[tuple[tuple[str, ...] | None, list[Item]]]) -> list[Item]:
    """The block: an arm per set of values, ``else`` for the default; arms with nothing to do left out."""
    idle = tuple(v for vals, items in arms if vals is not None and not items for v in vals)
    block: list[tuple[str | None, list[Item]]] = [(_test(key, v), i) for v, i in arms if v is not None and i]
    default = next((items for vals, items in arms if vals is None), [])
    if default:
        block.append((_test(key, idle, negated=True) if idle else None, default))
    if not block:
        return []
    if block[0][0] is None:  # only the default arm does anything, and every value goes there
        return default
    return [IfBlock(list(block))]
