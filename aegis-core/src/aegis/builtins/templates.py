"""Built-in policy templates for ``aegis init``, registered like any plugin's templates.

Template files live in ``aegis/templates/`` inside the package, so they ship in the wheel and
``aegis init`` works without the repository checked out.
"""

from __future__ import annotations

from pathlib import Path

from aegis.hookspecs import Register, hookimpl

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


@hookimpl
def aegis_register_policy_templates(register: Register) -> None:
    register(
        "default",
        TEMPLATE_DIR / "default.yaml",
        description="The quick-start policy: reads auto, bulk changes over 100 need approval, "
        "deletes blocked, anything else asks a human.",
    )
