"""Built-in policy templates for ``aegis init``, registered like any plugin's templates.

Template files live in ``aegis/templates/`` inside the package, so they ship in the wheel and
``aegis init`` works without the repository checked out. Each has test cases in the repository's
``policies/`` directory (``policies/<name>.cases.yaml``), run by ``tests/policies``.
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
    register(
        "crm",
        TEMPLATE_DIR / "crm.yaml",
        description="A CRM agent: reads and notes run; exports, customer messages, bulk and "
        "record changes ask a human; deletes and mass exports are blocked.",
    )
    register(
        "coding-agent",
        TEMPLATE_DIR / "coding-agent.yaml",
        description="A coding agent in a repository: reads, source edits and plain test/lint "
        "runs run; push, deploy, installs ask a human; secrets, .git and rm -rf are blocked.",
    )
    register(
        "finance",
        TEMPLATE_DIR / "finance.yaml",
        description="An agent that moves money: small payments in business hours run; larger or "
        "after-hours ones ask a human; over 10,000 and payee changes are blocked.",
    )
