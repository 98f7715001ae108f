"""Merkle trees over the audit trail, in the shape RFC 6962 / RFC 9162 define for CT logs.

Why a tree as well as the hash chain: the chain proves order, but showing one record means
handing over every record before it. A tree over the records lets anyone holding a signed
checkpoint (its root) check one record with ~log2(n) hashes, and nothing else from the database.

Hashing (RFC 6962 section 2.1): ``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 || left
|| right)``; the tree of ``n`` leaves splits at the largest power of two below ``n``. The leaf data
of one audit record binds its id, its chained intent hash and its sealed outcome hash
(``record_leaf``), so a proof covers what was asked *and* how it ended.

Everything here streams: a root needs O(log n) memory (``TreeBuilder``), and an inclusion path
is computed in one pass over the leaves (``inclusion_path``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

_sha256 = hashlib.sha256

#: Root of the empty tree (RFC 6962: the hash of the empty string).
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def record_leaf(record_id: int, row_hash: str, result_hash: str) -> bytes:
    """The leaf hash of one final audit record (its id, intent hash and outcome hash)."""
    return leaf_hash(f"aegis-record/1\n{record_id}\n{row_hash}\n{result_hash}".encode())


class TreeBuilder:
    """Append leaf hashes one by one; ``root()`` at any moment, in O(log n) memory.

    The stack holds the roots of complete subtrees, largest first, whose sizes are the binary
    digits of ``size``; RFC 6962's tree is exactly those subtrees folded from the right.
    """

    __slots__ = ("_sizes", "_stack", "size")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._sizes: list[int] = []
        self.size = 0

    def add(self, leaf: bytes) -> None:
        node, width = leaf, 1
        stack, sizes = self._stack, self._sizes
        while sizes and sizes[-1] == width:
            node = node_hash(stack.pop(), node)
            sizes.pop()
            width *= 2
        stack.append(node)
        sizes.append(width)
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for node in reversed(self._stack[:-1]):
            acc = node_hash(node, acc)
        return acc


def tree_root(leaves: Iterable[bytes]) -> bytes:
    builder = TreeBuilder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root()


def _largest_power_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose subtree roots form the inclusion path, leaf first.

    RFC 6962 section 2.1.1: PATH(m, D[n]) recurses into the half holding leaf m and appends
    the root of the other half; listed here bottom-up, as the path is given.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_below(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start = start + k
    ranges.reverse()
    return ranges


def inclusion_path(leaves: Iterable[bytes], index: int, size: int) -> tuple[bytes, list[bytes]]:
    """One pass over the first ``size`` leaves: the leaf at ``index`` and its audit path.

    The path's ranges are disjoint and, with the leaf, cover the whole tree, so each incoming
    leaf feeds exactly one builder; memory stays O(log^2 n) whatever the tree's size.
    """
    ranges = path_ranges(index, size)
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    builders = [TreeBuilder() for _ in ranges]
    target: bytes | None = None
    cursor = 0
    seen = 0
    for leaf in leaves:
        if seen >= size:
            break
        if seen == index:
            target = leaf
        else:
            while ranges[order[cursor]][1] <= seen:
                cursor += 1
            builders[order[cursor]].add(leaf)
        seen += 1
    if target is None or seen < size:
        raise ValueError(f"the tree has fewer than {size} leaves")
    return target, [b.root() for b in builders]


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root implied by ``leaf`` at ``index`` and its path; None when the path's shape is
    wrong for a tree of ``size`` leaves (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        return None
    fn, sn, acc = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    return acc if sn == 0 else None


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose subtree roots form the consistency proof from a
    tree of ``old`` leaves to one of ``new`` (RFC 6962 section 2.1.2, SUBPROOF), in order.

    Empty when nothing needs proving (``old`` is 0 or equal to ``new``).
    """
    if not 0 <= old <= new:
        raise ValueError(f"a tree of {old} leaves cannot grow into one of {new}")
    if old in (0, new):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, new, old, True
    while m != end - start:
        k = _largest_power_below(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def subtree_roots(leaves: Iterable[bytes], ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The roots of disjoint leaf ranges, in the order given, from one pass over the leaves
    (memory O(log n) per range; leaves outside every range are skipped)."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    builders = [TreeBuilder() for _ in ranges]
    end = max((r[1] for r in ranges), default=0)
    cursor = 0
    for seen, leaf in enumerate(leaves):
        if seen >= end:
            break
        while cursor < len(order) and ranges[order[cursor]][1] <= seen:
            cursor += 1
        if cursor < len(order) and ranges[order[cursor]][0] <= seen:
            builders[order[cursor]].add(leaf)
    for i, (start, stop) in enumerate(ranges):
        if builders[i].size != stop - start:
            raise ValueError(f"the tree has fewer than {stop} leaves")
    return [b.root() for b in builders]


def consistent(old: int, new: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """Whether ``path`` proves the tree of ``new`` leaves with ``new_root`` extends the tree of
    ``old`` leaves with ``old_root`` (RFC 9162 section 2.1.4.2)."""
    if not 0 <= old <= new:
        return False
    if old == 0:
        return not path  # every tree extends the empty one
    if old == new:
        return not path and old_root == new_root
    nodes = list(path)
    if old & (old - 1) == 0:  # a power of two: the old tree is itself a subtree of the new
        nodes.insert(0, old_root)
    if not nodes:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
