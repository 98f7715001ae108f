"""Build-time metadata for the root meta-distribution ``agent-aegis`` (hatchling metadata hook).

``pip install .`` and ``pip install '.[langchain]'`` at the repository root must work, but none
of this repository's distributions is on the package index (and the index's ``agent-aegis`` is an
older, different project). So the hook writes two kinds of metadata from one list:

- **Built from a checkout** (``aegis-core/pyproject.toml`` next to this file): the core and every
  plugin named by an extra become direct references to the distribution *in this checkout*
  (``agent-aegis-langchain[agents] @ file:///…/aegis-adapters/langchain``). Each name and version
  is checked against that distribution's own pyproject.toml, so a typo or a version bump that was
  missed fails the build here instead of the resolve later.
- **Built for the index**: plain names and versions (``agent-aegis-langchain[agents]==0.1.0``),
  as a published distribution must carry. That is the case when no checkout is around (a wheel
  built from the sdist, which ships only the root's own files: what ``uv build`` and
  ``python -m build`` do by default, and so ``nox -s build``), or when ``AEGIS_BUILD_FOR_INDEX=1``
  is set for a build straight from a checkout (``uv build --wheel``).

The list itself is ``[tool.hatch.metadata.hooks.custom.extras]`` in pyproject.toml, with plain
names: ``optional-dependencies`` is dynamic because this hook writes it, and a field that is
dynamic may not also stand in ``[project]``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CORE_REQUIREMENT = "agent-aegis-core==0.1.0"
#: Where the distributions of this repository live, relative to the root.
DIST_GLOBS = ("aegis-core", "aegis-adapters/*", "aegis-approvals/*", "aegis-server")
FOR_INDEX_ENV = "AEGIS_BUILD_FOR_INDEX"


def checkout_distributions(root: Path) -> dict[str, tuple[str, Path]]:
    """Every distribution in the checkout: canonical name -> (version, directory)."""
    found: dict[str, tuple[str, Path]] = {}
    for pattern in DIST_GLOBS:
        for pyproject in sorted(root.glob(f"{pattern}/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            found[canonicalize_name(project["name"])] = (
                str(project["version"]),
                pyproject.parent.resolve(),
            )
    return found


def to_checkout(requirement: str, local: dict[str, tuple[str, Path]]) -> str:
    """``name[extras]==V ; marker`` -> ``name[extras] @ file:///dir ; marker`` (V checked)."""
    req = Requirement(requirement)
    name = canonicalize_name(req.name)
    if name not in local:
        if name.startswith("agent-aegis-"):
            raise ValueError(f"{requirement!r}: no distribution {req.name} in this checkout")
        return requirement  # a third-party requirement stays as it is
    version, directory = local[name]
    if not req.specifier.contains(version, prereleases=True):
        raise ValueError(
            f"{requirement!r}: the checkout's {req.name} is version {version} ({directory})"
        )
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f" ; {req.marker}" if req.marker else ""
    return f"{req.name}{extras} @ {directory.as_uri()}{marker}"


class CheckoutDependencies(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        root = Path(self.root)
        extras: dict[str, list[str]] = dict(self.config.get("extras", {}))
        for_index = os.environ.get(FOR_INDEX_ENV, "") not in ("", "0")
        if for_index or not (root / "aegis-core" / "pyproject.toml").is_file():
            metadata["dependencies"] = [CORE_REQUIREMENT]
            metadata["optional-dependencies"] = extras
            return
        local = checkout_distributions(root)
        metadata["dependencies"] = [to_checkout(CORE_REQUIREMENT, local)]
        metadata["optional-dependencies"] = {
            extra: [to_checkout(r, local) for r in requirements]
            for extra, requirements in extras.items()
        }
