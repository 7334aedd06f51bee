"""Random bytes and random JSON into every loader of user files: only our own one-line errors come out.

Scripts, corpora, golden files, vendor files and reports are all bad input in
the wild; each loader must answer with its own error type naming the file.
Bounded examples here; HYPOTHESIS_PROFILE=fuzz runs thousands.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conform.harness.determinism import CorpusError, load_corpus
from conform.harness.determinism.golden import load_golden
from conform.harness.vendor import load_vendor
from conform.reports import ReportFileError, load_report
from conform.stubs import ScriptError, load_script

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)

LOADERS: list[tuple[str, Callable[[Path], Any], type[Exception]]] = [
    ("script", load_script, ScriptError),
    ("corpus", load_corpus, CorpusError),
    ("golden", load_golden, CorpusError),
    ("vendor", load_vendor, ValueError),
    ("report", load_report, ReportFileError),
]


def _load(loader: Callable[[Path], Any], allowed: type[Exception], content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_bytes(content)
        try:
            loader(path)
        except allowed as error:
            message = str(error)
            assert str(path) in message and "\n" not in message, message


@pytest.mark.parametrize(("name", "loader", "allowed"), LOADERS, ids=[n for n, _, _ in LOADERS])
@given(content=st.binary(max_size=200))
def test_random_bytes_give_only_the_loaders_own_error(
    name: str, loader: Callable[[Path], Any], allowed: type[Exception], content: bytes
) -> None:
    _load(loader, allowed, content)


@pytest.mark.parametrize(("name", "loader", "allowed"), LOADERS, ids=[n for n, _, _ in LOADERS])
@given(document=JSON, lines=st.integers(min_value=1, max_value=3))
def test_random_json_gives_only_the_loaders_own_error(
    name: str, loader: Callable[[Path], Any], allowed: type[Exception], document: Any, lines: int
) -> None:
    text = "\n".join(json.dumps(document) for _ in range(lines)) + "\n"
    _load(loader, allowed, text.encode())
