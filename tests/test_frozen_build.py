"""ams/_frozen_build.py: MQMD and Message built through an unfrozen twin are the same values as
built by their own initialisers (equal, hashable alike, frozen, picklable), and a class the twin
would build wrongly is refused."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ams._frozen_build import builder
from ams.mq.mqmd import MD_FIELDS, MQMD, md_with, new_md
from ams.mq.transport import Message, new_message

_TEXT = st.text(max_size=48)
_INT = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_ID = st.binary(min_size=24, max_size=24)
_BY_FIELD = {
    field.name: (_TEXT if field.type in ("str", str) else _ID if field.type in ("bytes", bytes) else _INT)
    for field in attrs.fields(MQMD)
}
_MD_VALUES = st.tuples(*(_BY_FIELD[name] for name in MD_FIELDS))


@given(_MD_VALUES)
def test_new_md_is_the_mqmd_its_initialiser_builds(values: tuple[Any, ...]) -> None:
    built, reference = new_md(*values), MQMD(*values)
    assert type(built) is MQMD
    assert built == reference and hash(built) == hash(reference) and repr(built) == repr(reference)
    assert attrs.astuple(built) == attrs.astuple(reference) == values
    assert pickle.loads(pickle.dumps(built)) == reference
    assert attrs.evolve(built, priority=4) == attrs.evolve(reference, priority=4)


@given(_MD_VALUES, _INT)
def test_md_with_changes_one_field_and_keeps_the_rest(values: tuple[Any, ...], expiry: int) -> None:
    changed = md_with(new_md(*values), expiry=expiry)
    assert changed == attrs.evolve(MQMD(*values), expiry=expiry)


def test_a_built_mqmd_is_frozen() -> None:
    built = new_md(*attrs.astuple(MQMD()))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.priority = 9  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del built.msg_id
    assert built.priority == MQMD().priority


def test_new_message_is_the_message_its_initialiser_builds() -> None:
    md = MQMD(priority=3)
    built = new_message(md, b"body")
    assert type(built) is Message and built == Message(md, b"body") and hash(built) == hash(Message(md, b"body"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.body = b"other"  # type: ignore[misc]


def _refusal(cls: type, sample: tuple[Any, ...]) -> str:
    with pytest.raises(TypeError) as refused:
        builder(cls, sample)
    return str(refused.value)


def test_a_class_whose_initialiser_validates_or_converts_is_refused() -> None:
    @attrs.frozen(weakref_slot=False)
    class Validated:
        size: int = attrs.field(validator=attrs.validators.ge(0))

    @attrs.frozen(weakref_slot=False)
    class Converted:
        size: int = attrs.field(converter=int)

    @attrs.frozen(weakref_slot=False)
    class Hooked:
        size: int

        def __attrs_post_init__(self) -> None:
            pass

    assert "found size" in _refusal(Validated, (1,))
    assert "found size" in _refusal(Converted, (1,))
    assert "found __attrs_post_init__" in _refusal(Hooked, (1,))


def test_a_class_with_an_initialiser_of_its_own_is_refused() -> None:
    """attrs writes no ``__init__`` where the class has one (it gets ``__attrs_init__`` instead):
    the twin's would skip whatever that one checks, on values the sample does not show."""

    @attrs.frozen(weakref_slot=False)
    class Checked:
        size: int

        def __init__(self, size: int) -> None:
            if size < 0:
                raise ValueError(f"expected a size of at least 0, found {size}")
            self.__attrs_init__(size)  # type: ignore[attr-defined]

    assert "an __init__ of its own" in _refusal(Checked, (1,))


def test_a_class_with_a_weakref_slot_or_no_slots_is_refused() -> None:
    @attrs.frozen
    class Weak:
        size: int

    @attrs.frozen(slots=False)
    class Unslotted:
        size: int

    assert "a __weakref__ slot" in _refusal(Weak, (1,))
    assert "a __weakref__ slot" in _refusal(Unslotted, (1,))


def test_a_plain_class_is_accepted_and_builds_its_instances() -> None:
    @attrs.frozen(weakref_slot=False)
    class Plain:
        size: int
        name: str = "x"

    build = builder(Plain, (1, "a"))
    assert build(2, "b") == Plain(2, "b") and type(build(2, "b")) is Plain
