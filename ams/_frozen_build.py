"""A cheaper way to build instances of a frozen, slotted attrs class whose initialiser only stores
its arguments (MQMD, the queue manager's Message): what a get+put makes per message.

attrs' frozen initialiser sets each slot through a call of ``object.__setattr__`` (the class's
own ``__setattr__`` refuses), each call a method-wrapper with its argument tuple: about 16,000
instructions for MQMD's 17 fields, the largest single cost of the embedded queue manager's
get+put. An unfrozen twin of the class (the same slots in the same order, no ``__setattr__`` of
its own) sets them as plain stores; the instance then becomes one of the class itself by
``__class__`` assignment, which CPython allows between heap types of one layout, and is as frozen,
equal and hashable as any other. A third of the cost.

The class must not have a ``__weakref__`` slot (CPython 3.11 finds the layouts of two such classes
different), and its initialiser must do nothing but store: a validator, converter, factory, init
hook or ``__init__`` of the class's own would be skipped by the twin. :func:`builder` refuses a
class for which either fails, and checks at import that it builds what the class itself does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from attrs import AttrsInstance

_Built = TypeVar("_Built", bound=AttrsInstance)


def builder(cls: type[_Built], sample: tuple[Any, ...]) -> Callable[..., _Built]:
    """``cls(*values)`` (every field, by position), built through an unfrozen twin; checked on
    ``sample`` (a value for every field) to equal ``cls(*sample)``."""
    fields = attrs.fields(cls)
    skipped = [
        field.name
        for field in fields
        if field.validator is not None or field.converter is not None or isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
    ]
    skipped += [name for name in ("__attrs_pre_init__", "__attrs_post_init__") if hasattr(cls, name)]
    if hasattr(cls, "__attrs_init__"):  # attrs wrote none: the class's own __init__ may check anything
        skipped.append("an __init__ of its own")
    if skipped or "__weakref__" in getattr(cls, "__slots__", ("__weakref__",)):
        raise TypeError(
            f"{cls.__name__} cannot be built through an unfrozen twin: expected a slotted attrs class without a "
            "__weakref__ slot whose initialiser only stores its fields, found "
            f"{', '.join(skipped) or 'a __weakref__ slot'}"
        )
    twin: Any = attrs.make_class(
        cls.__name__,
        {field.name: attrs.field(default=field.default) for field in fields},
        slots=True,
        frozen=False,
        weakref_slot=False,
        eq=False,
        repr=False,
    )

    def build(*values: Any) -> _Built:
        instance = twin(*values)
        instance.__class__ = cls
        return instance  # type: ignore[no-any-return]

    built = build(*sample)
    if type(built) is not cls or built != cls(*sample) or attrs.astuple(built, recurse=False) != sample:
        raise TypeError(f"{cls.__name__} built through its unfrozen twin is no longer what {cls.__name__}(...) is")
    return build
