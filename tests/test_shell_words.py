"""The setmqspl word splitter: the same words (and errors) as shlex in POSIX mode, in linear time."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ams.policy.shell_words import ShellSyntaxError, split_words

_LINES = st.text(st.sampled_from(" \t\r\n#'\"\\abc-=,é+;"), max_size=24)


def _shlex(line: str) -> list[str] | str:
    try:
        return shlex.split(line, comments=True)
    except ValueError as error:
        return str(error)


def _ours(line: str) -> list[str] | str:
    try:
        return split_words(line)
    except ShellSyntaxError as error:
        return str(error)


@settings(max_examples=3000)
@given(_LINES)
def test_words_and_errors_are_shlex_s(line: str) -> None:
    assert _ours(line) == _shlex(line)


@pytest.mark.parametrize(
    "line,words",
    [
        (
            "setmqspl -m QM -p Q -r \"CN=bob, O=AMS\" -a 'CN=a\\b'",
            ["setmqspl", "-m", "QM", "-p", "Q", "-r", "CN=bob, O=AMS", "-a", "CN=a\\b"],
        ),
        ('-r "CN=\\"quoted\\",O=X" # a comment', ["-r", 'CN="quoted",O=X']),
        ('a""b "" c\\ d', ["ab", "", "c d"]),
    ],
)
def test_examples(line: str, words: list[str]) -> None:
    assert split_words(line) == words == shlex.split(line, comments=True)
