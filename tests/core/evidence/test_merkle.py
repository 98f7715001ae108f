"""The tree against a direct transcription of RFC 6962's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from aegis.runtime.audit.merkle import (
    EMPTY_ROOT,
    TreeBuilder,
    inclusion_path,
    leaf_hash,
    node_hash,
    root_from_path,
    tree_root,
)


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(str(i).encode()) for i in range(n)]


def test_known_shapes() -> None:
    assert tree_root([]) == EMPTY_ROOT
    a, b, c = leaves_of(3)
    assert tree_root([a]) == a
    assert tree_root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert leaf_hash(b"") != hashlib.sha256(b"").digest()  # domain separation


@given(st.integers(min_value=0, max_value=300))
def test_streaming_root_matches_the_definition_at_every_size(n: int) -> None:
    leaves = leaves_of(n)
    builder = TreeBuilder()
    for leaf in leaves:
        builder.add(leaf)
    assert builder.root() == mth(leaves)


@given(st.integers(min_value=1, max_value=200), st.data())
def test_paths_match_the_definition_and_verify(n: int, data: st.DataObject) -> None:
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    leaves = leaves_of(n)
    leaf, got = inclusion_path(iter(leaves), m, n)
    assert (leaf, got) == (leaves[m], path(m, leaves))
    root = mth(leaves)
    assert root_from_path(leaf, m, n, got) == root
    # The wrong leaf, position or size never reaches the root.
    assert root_from_path(leaf_hash(b"other"), m, n, got) != root
    if n > 1:
        assert root_from_path(leaf, (m + 1) % n, n, got) != root


def test_prefix_of_a_longer_stream_and_a_short_stream() -> None:
    leaves = leaves_of(20)
    leaf, got = inclusion_path(iter(leaves), 3, 10)
    assert root_from_path(leaf, 3, 10, got) == mth(leaves[:10])
    try:
        inclusion_path(iter(leaves[:5]), 3, 10)
    except ValueError as exc:
        assert "fewer than 10" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("a short stream must not give a path")
