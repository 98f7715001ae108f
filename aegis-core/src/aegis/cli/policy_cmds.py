"""Policy commands: ``init``, ``validate``, ``schema``, and ``simulate`` (in ``simulate_cmd``,
re-exported here).

``validate`` prints one ``file:line:col: key: message`` line per problem on stdout (like a
linter, so editors and CI annotators can parse it) and exits 1 when any file is invalid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import Parameter

from aegis.cli.errors import CliError, ExitCode
from aegis.cli.simulate_cmd import simulate

if TYPE_CHECKING:
    from aegis.core.policy import Policy
    from aegis.plugins import Registration

__all__ = ["init", "schema", "simulate", "validate"]


# --- init -----------------------------------------------------------------------------------


def init(
    path: Path = Path("policy.yaml"),
    /,
    *,
    template: Annotated[str, Parameter(alias="-t")] = "default",
    list_templates: Annotated[bool, Parameter(name="--list", negative="")] = False,
    force: Annotated[bool, Parameter(negative="")] = False,
    set_values: Annotated[list[str] | None, Parameter(name="--set")] = None,
) -> int:
    """Write a starter policy (default: policy.yaml) from a template, comments included.

    Parameters
    ----------
    path
        Where to write; a directory gets policy.yaml inside it.
    template
        Template name (see --list); plugins can add templates.
    list_templates
        List the available templates and exit.
    force
        Overwrite an existing file.
    set_values
        Change a value while keeping the template's comments, e.g. --set defaults.approval=block
        or --set rules.0.risk_level=medium (value parsed as YAML). Repeatable.
    """
    from aegis import plugins
    from aegis.cli.output import print_message, print_table

    templates = plugins.get_registry().of_kind("policy_templates")
    if list_templates:
        rows = [
            (name, reg.plugin, str(reg.options.get("description", "")), str(reg.obj))
            for name, reg in sorted(templates.items())
        ]
        print_table(("Template", "Plugin", "Description", "File"), rows, title="Policy templates")
        return ExitCode.OK

    registration = templates.get(template)
    if registration is None:
        known = ", ".join(sorted(templates)) or "none"
        raise CliError(f"--template {template!r}: no such template (available: {known})")
    target = path / "policy.yaml" if path.is_dir() else path
    if target.exists() and not force:
        raise CliError(f"{target} already exists; use --force to overwrite it")

    text = _template_text(registration)
    if set_values:
        text = _apply_sets(text, set_values, source=f"template {template!r}")
    policy = _load_policy_text(text, source=str(target))
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{target}: cannot write: {exc.strerror or exc}") from None
    print_message(
        f"Wrote {target} from template {template!r} ({_rules_phrase(policy)}). "
        f"Next: aegis validate {target}",
        style="green",
    )
    return ExitCode.OK


def _template_text(registration: Registration) -> str:
    obj = registration.obj
    if isinstance(obj, str | Path):
        try:
            return Path(obj).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(
                f"template {registration.name!r} (plugin {registration.plugin}): cannot read "
                f"{obj}: {exc.strerror or exc}",
                ExitCode.INTERNAL,
            ) from None
    raise CliError(
        f"template {registration.name!r} (plugin {registration.plugin}) is registered as "
        f"{type(obj).__name__}; expected a file path",
        ExitCode.INTERNAL,
    )


def _apply_sets(text: str, assignments: list[str], *, source: str) -> str:
    """Edit the template through ruamel's round-trip loader, so comments and layout survive."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from aegis.cli.parsing import set_dotted

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        document = yaml.load(text)
    except YAMLError as exc:
        raise CliError(f"{source}: not valid YAML: {exc}", ExitCode.INTERNAL) from None
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise CliError(f"--set {item!r}: expected key=value, e.g. defaults.approval=block")
        try:
            value = YAML(typ="safe").load(raw) if raw.strip() else ""
        except YAMLError:
            value = raw
        set_dotted(document, key.strip(), value)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _load_policy_text(text: str, *, source: str) -> Policy:
    from aegis.core.policy import Policy

    return Policy.from_yaml_string(text, source=source)  # PolicyError → issues, exit 1


def _rules_phrase(policy: Policy) -> str:
    count = len(policy.rules)
    return f"{count} rule{'s' if count != 1 else ''}"


# --- validate -------------------------------------------------------------------------------


def validate(
    files: Annotated[list[Path], Parameter(consume_multiple=True)],
    /,
    *,
    strict: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Check policy files; print file:line:col: key: message for every problem.

    Parameters
    ----------
    files
        One or more policy YAML files.
    strict
        Also report what is valid but lax or misleading: approvals anyone authenticated may
        answer, rules an earlier rule shadows, overlapping rules with different decisions, an
        auto default; exit 1 if there is any.
    """
    from aegis.core.policy import Policy
    from aegis.errors import PolicyError

    if not files:
        raise CliError("validate: give at least one policy file")
    worst = ExitCode.OK
    ok = 0
    for file in files:
        if not file.is_file():
            reason = "is a directory" if file.is_dir() else "no such file"
            sys.stdout.write(f"{file}: error: {reason}\n")
            worst = max(worst, ExitCode.USAGE)
            continue
        try:
            policy = Policy.from_yaml(file)
        except PolicyError as exc:
            for issue in exc.issues:
                sys.stdout.write(f"{issue}\n")
            worst = max(worst, ExitCode.CHECK_FAILED)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            sys.stdout.write(f"{file}: error: cannot read: {exc}\n")
            worst = max(worst, ExitCode.USAGE)
            continue
        ok += 1
        sys.stdout.write(
            f"{file}: OK ({_rules_phrase(policy)}, fingerprint {policy.fingerprint[:12]})\n"
        )
        if strict:
            for warning in _lax(policy):
                sys.stdout.write(f"{file}: strict: {warning}\n")
                worst = max(worst, ExitCode.CHECK_FAILED)
    if len(files) > 1:
        bad = len(files) - ok
        sys.stdout.write(
            f"{ok} of {len(files)} files valid" + (f", {bad} with problems\n" if bad else "\n")
        )
    return worst


def _lax(policy: Any) -> list[str]:
    """What ``--strict`` reports: valid choices that leave a decision wider than it looks, and
    rules that do not do what their place suggests (``aegis.core.policy_lint``)."""
    from aegis.core.approvers import parse_requirements
    from aegis.core.policy_lint import lint
    from aegis.core.risk import Approval

    found: list[str] = lint(policy)
    defaults = policy.defaults.approval
    for rule in policy.rules:
        approval = rule.approval or defaults
        if approval is not Approval.APPROVE:
            continue
        terms, _ = parse_requirements(rule.approvers)
        if terms is None or terms.allow is None:
            found.append(
                f"rule {rule.name!r}: its approval requests accept any answer a configured "
                "channel authenticated (add approvers.allow to name who may answer)"
            )
    if defaults is Approval.APPROVE:
        found.append(
            "defaults: actions no rule matches need approval, and anyone a configured channel "
            "authenticated may give it"
        )
    return found


# --- schema ---------------------------------------------------------------------------------


def schema(
    *,
    output: Annotated[Path | None, Parameter(alias="-o")] = None,
) -> int:
    """Print the policy JSON Schema (built-in and plugin conditions), for editor autocomplete.

    A plugin that failed to load contributes nothing (a warning on stderr names it), so the
    schema printed is always a valid one.

    Parameters
    ----------
    output
        Write to this file instead of stdout.
    """
    from aegis import plugins
    from aegis.core.schema import policy_schema

    text = json.dumps(policy_schema(), indent=2, sort_keys=False) + "\n"
    failed = sorted({f.plugin for f in plugins.load_failures()})
    if failed:  # their conditions are left out (never an invalid fragment): say so
        sys.stderr.write(
            f"warning: plugins that failed to load are not in this schema: {', '.join(failed)}"
            " (see `aegis plugins`)\n"
        )
    if output is None:
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None
    sys.stderr.write(f"Wrote the policy JSON Schema to {output}\n")
    return ExitCode.OK
