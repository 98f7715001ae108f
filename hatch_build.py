"""Build-time metadata for the root meta-distribution ``agent-aegis`` (hatchling metadata hook).

``pip install .`` at the repository root must work, but ``agent-aegis-core`` is not on the
package index (and the index's ``agent-aegis`` is an older, different project). So, built from a
checkout, the meta-distribution depends on the core *in this checkout* (a ``file:`` reference);
built from its sdist, where no checkout is around it, it depends on ``agent-aegis-core==VERSION``
as a published distribution would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

CORE_VERSION = "0.1.0"


class CheckoutDependencies(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        core = Path(self.root) / "aegis-core"
        if (core / "pyproject.toml").is_file():
            metadata["dependencies"] = [f"agent-aegis-core @ {core.resolve().as_uri()}"]
        else:
            metadata["dependencies"] = [f"agent-aegis-core=={CORE_VERSION}"]
