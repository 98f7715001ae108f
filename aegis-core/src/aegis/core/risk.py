"""The two scales every decision is expressed in: how risky, and who must agree.

Both are ordered so that "the stricter of two" is a plain ``max``; the policy engine, the
hierarchy and the fail-closed paths all rely on that ordering rather than on ad-hoc comparisons.
"""

from __future__ import annotations

import enum


class RiskLevel(enum.IntEnum):
    """Four tiers, ordered by severity (``max`` picks the riskier)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str | int | RiskLevel) -> RiskLevel:
        """Accept ``"high"``, ``"HIGH"``, ``3`` or a member; anything else is a ValueError."""
        if isinstance(value, RiskLevel):
            return value
        if isinstance(value, bool):
            raise ValueError(f"not a risk level: {value!r}")
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise ValueError(
                f"not a risk level: {value!r} (expected low, medium, high or critical)"
            ) from None

    def __str__(self) -> str:
        return self.name


class Approval(enum.Enum):
    """What a rule requires before an action may run.

    ``strictness`` orders the members (auto < approve < block) so the stricter of two
    requirements can be chosen without knowing the members by name.
    """

    AUTO = "auto"
    APPROVE = "approve"
    BLOCK = "block"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]

    @classmethod
    def parse(cls, value: str | Approval) -> Approval:
        if isinstance(value, Approval):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(
                f"not an approval mode: {value!r} (expected auto, approve or block)"
            ) from None

    @staticmethod
    def strictest(*values: Approval) -> Approval:
        return max(values, key=lambda a: _STRICTNESS[a])

    def __str__(self) -> str:
        return self.value


_STRICTNESS = {Approval.AUTO: 0, Approval.APPROVE: 1, Approval.BLOCK: 2}
