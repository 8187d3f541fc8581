"""IR models built from parts already of their field types: no pydantic validation, and compact instances.

The elaborator makes a 100k-node graph's nodes and parameters from checked parts (ops and types from the shape
rules), so validating them again would only cost time. :func:`maker` builds such instances, and builds them small:
it stores each field as an attribute, in declaration order, so CPython keeps the values in a compact array whose
keys every instance of the class shares (a ``Param`` takes about 180 bytes instead of 360 with a dict of its own).
An instance built this way is an ordinary pydantic model: equal to, hashing like and dumping like a validated one.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_MAKERS: dict[type, Callable[..., Any]] = {}


def maker(cls: type[M]) -> Callable[..., M]:
    """A function taking one value per field of ``cls`` (positionally in declaration order, or by name) and
    returning the instance, unvalidated: each value must already be of its field's type.

    Every instance shares one fields-set (all fields are set; pydantic copies it before any change). The first call
    for a class stores its field names as the keys its instances share, so call it as the class is defined
    (:func:`compact`): instances validated before that would use up the room CPython keeps for shared keys.
    """
    made = _MAKERS.get(cls)
    if made is not None:
        return made
    fields = tuple(cls.model_fields)
    if not all(f.isidentifier() and not f.startswith("_") for f in fields):
        raise TypeError(f"{cls.__name__}: a field name is not a plain identifier")
    body = "".join(f"    _set(_obj, {f!r}, {f})\n" for f in fields)
    source = (f"def make({', '.join(fields)}):\n    _obj = _new(_cls)\n{body}"
              "    _set_fields_set(_obj, _fields_set)\n"
              "    _set_extra(_obj, None)\n"
              "    _set_private(_obj, None)\n"
              "    return _obj\n")
    scope: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "_cls": cls,
                             "_fields_set": set(fields), "_set_fields_set": _slot_setter("__pydantic_fields_set__"),
                             "_set_extra": _slot_setter("__pydantic_extra__"),
                             "_set_private": _slot_setter("__pydantic_private__")}
    # the text is built from the field names of archdsl's own IR classes (checked identifiers above), never from
    # a spec, graph.json or any other file
    exec(compile(source, f"<maker of {cls.__name__}>", "exec"), scope)   # noqa: S102 - our own field names
    made = _MAKERS[cls] = scope["make"]
    made.__qualname__ = made.__name__ = f"make_{cls.__name__}"
    made(*(None for _ in fields))          # the shared keys, in field order, before any other instance exists
    return made


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    """A setter of BaseModel's slot ``name`` on an instance: its member descriptor's, which skips the attribute
    look-up of object.__setattr__ (half the time); object.__setattr__ where the slot is not a plain member."""
    found = BaseModel.__dict__.get(name)
    if type(found) is MemberDescriptorType:
        return found.__set__
    return lambda obj, value: object.__setattr__(obj, name, value)


def compact(cls: type[M]) -> type[M]:
    """Class decorator: prepare :func:`maker` for ``cls`` as it is defined."""
    maker(cls)
    return cls


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of ``cls`` from a value for each field, each already of its field's type (fields left out take
    their declared defaults); see :func:`maker`."""
    fields = cls.model_fields
    if len(values) != len(fields):
        values = {k: values[k] if k in values else f.get_default(call_default_factory=True) for k, f in fields.items()}
    return maker(cls)(**values)
