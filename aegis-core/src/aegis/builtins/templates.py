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
    register(
        "browser",
        TEMPLATE_DIR / "browser.yaml",
        description="A browser agent: navigating, reading and screenshots run; clicks, typing "
        "and form submits ask a human; JavaScript eval, file:/javascript: URLs and password "
        "fields are blocked.",
    )
    register(
        "data-pipeline",
        TEMPLATE_DIR / "data-pipeline.yaml",
        description="An agent running SQL: SELECTs run; INSERT/UPDATE/scoped DELETE ask a "
        "human; DROP, TRUNCATE, ALTER, GRANT and unscoped DELETE are blocked.",
    )
    register(
        "devops",
        TEMPLATE_DIR / "devops.yaml",
        description="A DevOps/SRE agent: monitoring runs; deploys, scaling and restarts ask a "
        "human in business hours and are blocked outside them; destroy is blocked.",
    )
    register(
        "healthcare",
        TEMPLATE_DIR / "healthcare.yaml",
        description="An agent near patient data: directory and schedule searches run; reading "
        "or changing PHI and orders ask a human; deletes and PHI leaving are blocked.",
    )
    register(
        "ecommerce",
        TEMPLATE_DIR / "ecommerce.yaml",
        description="A shop agent: viewing runs; refunds up to 500, price/stock and order "
        "changes ask a human; deletes and larger refunds are blocked.",
    )
    register(
        "support",
        TEMPLATE_DIR / "support.yaml",
        description="A support agent: reading, internal notes and tags run; replies and "
        "closing tickets ask a human; deletes are blocked.",
    )
