"""An ``LlmNode`` whose outputs are not one string: ``llm(..., schema=...)``, its answer read as WayFlow reads it.

WayFlow asks for JSON (its ``PromptExecutionStep`` with output descriptors): the schema asked for is
the one output's own when that is an object with properties, else an object ``expected_output``
of all the outputs, each required unless it has a default. It reads the answer leniently: a JSON
object gives each output (the one object output is the whole answer), a value that is not an
object stands for the first output, and an output missing or not of its type is its default (the
property's, else its type's: ``""``, ``0``, ``false``, ``[]``, ``{}``; an enumeration's first value
for a value outside it). flowmagic does the same: the node's ``schema=`` is a class made here,
from the file's properties (nothing from the file runs), whose JSON schema is WayFlow's and whose
reading is WayFlow's: a dict of the outputs, each then a step of its own.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel

from .agentspec_text import Component

Schema = dict[str, Any]

_TYPE_DEFAULTS: dict[str, Any] = {"string": "", "integer": 0, "number": 0.0, "boolean": False, "null": None}
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def is_structured(outputs: list[Schema]) -> bool:
    """Whether an LLM node with these outputs asks for JSON (anything but one string)."""
    return len(outputs) != 1 or outputs[0].get("type", "string") != "string"


def answer_schema(name: str, outputs: list[Schema]) -> type[BaseModel]:
    """The ``schema=`` of an LLM node with these outputs (titled by the keys of its answer)."""
    asked = _asked(outputs)
    expected = copy.deepcopy(outputs)

    class Answer(BaseModel):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> Schema:
            return copy.deepcopy(asked)

        @classmethod
        def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Any:
            return read(json_data, expected)

    Answer.__name__ = Answer.__qualname__ = name
    return Answer


def read(text: Any, outputs: list[Schema]) -> Answered:
    """The values of the outputs in an answer, by title, as WayFlow reads them."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", "replace")
    try:
        content = json.loads(text)
    except (TypeError, ValueError):
        content = text
    if not isinstance(content, dict) or (len(outputs) == 1 and _is_object(outputs[0])):
        content = {str(outputs[0].get("title")): content}
    return Answered(
        {
            str(o.get("title")): _checked(content[o.get("title")], o) if o.get("title") in content else default(o)
            for o in outputs
        }
    )


class Answered(dict[str, Any]):
    """The outputs an answer gives, by title: a dict, which also dumps itself as a pydantic model's
    value does (where flowmagic records or shows a ``schema=`` answer)."""

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return dict(self)

    def model_dump_json(self, **_: Any) -> str:
        return json.dumps(self, ensure_ascii=False)


def default(schema: Schema) -> Any:
    """The property's default, or its type's."""
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    return _type_default(schema)


def _type_default(schema: Schema) -> Any:
    kind = _kinds(schema)[0] if _kinds(schema) else "string"
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return _TYPE_DEFAULTS.get(kind)


def _asked(outputs: list[Schema]) -> Schema:
    if len(outputs) == 1 and _is_object(outputs[0]):
        schema = {k: v for k, v in copy.deepcopy(outputs[0]).items() if k != "title"}
        schema["required"] = [n for n, p in schema["properties"].items() if "default" not in p]
        return schema
    return {
        "title": "expected_output",
        "description": "the expected output of the generation",
        "type": "object",
        "properties": {str(o.get("title")): copy.deepcopy(o) for o in outputs},
        "required": [str(o.get("title")) for o in outputs if "default" not in o],
    }


def _is_object(schema: Schema) -> bool:
    return schema.get("type") == "object" and isinstance(schema.get("properties"), dict)


def _kinds(schema: Schema) -> list[str]:
    kind = schema.get("type")
    return [str(k) for k in kind] if isinstance(kind, list) else [str(kind)] if kind else []


def _checked(value: Any, schema: Schema) -> Any:
    """``value`` if it is of the property's type (an object's properties checked in turn), else cast as
    WayFlow casts it, else the first value of its enumeration or its type's default."""
    kinds = _kinds(schema)
    if not kinds:
        return value
    if not any(_fits(value, k) for k in kinds):
        value = _cast(value, kinds[0])
    enum = schema.get("enum")
    if value is _NOT or (isinstance(enum, list) and enum and value not in enum):
        return enum[0] if isinstance(enum, list) and enum else _type_default(schema)
    if isinstance(value, dict) and _is_object(schema):
        props: Component = schema["properties"]
        kept = {k: v for k, v in value.items() if k not in props} if schema.get("additionalProperties") else {}
        return {**{k: _checked(value[k], p) if k in value else default(p) for k, p in props.items()}, **kept}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_checked(item, schema["items"]) for item in value]
    return value


_NOT = object()  # a value that does not cast


def _fits(value: Any, kind: str) -> bool:
    return isinstance(value, _PYTHON_TYPES.get(kind, ())) and not (
        kind in ("integer", "number") and isinstance(value, bool)
    )


def _cast(value: Any, kind: str) -> Any:
    """WayFlow's casts: to a string (JSON, ``""`` for null), between numbers and booleans."""
    if kind == "string":
        return "" if value is None else json.dumps(value)
    if isinstance(value, (int, float)):
        if kind == "boolean":
            return value != 0
        if kind == "number":
            return float(value)
        if kind == "integer":
            return int(value)
    return _NOT


__all__ = ["Answered", "answer_schema", "default", "is_structured", "read"]
