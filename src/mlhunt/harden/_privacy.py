"""The privacy attacks both DP mitigations re-run before and after: membership inference and
attribute inference, with the parameters the user gave each."""

from __future__ import annotations

from typing import Any

from mlhunt.assess.attacks import attribute_inference, membership
from mlhunt.harden.base import HardenContext, ModelTarget, attack_params, measures, run_attack

MEMBERSHIP, ATTRIBUTE = membership.ID, attribute_inference.ID


def privacy_attacks(ctx: HardenContext, target: ModelTarget, label: str) -> dict[str, Any]:
    """Measures of both attacks on ``target``, keyed by attack id."""
    p = ctx.params
    return {
        MEMBERSHIP: measures(
            run_attack(
                ctx, membership, target, attack_params(MEMBERSHIP, p.get("membership")), label
            )
        ),
        ATTRIBUTE: measures(
            run_attack(
                ctx,
                attribute_inference,
                target,
                attack_params(ATTRIBUTE, p.get("attribute")),
                label,
            )
        ),
    }


def tpr_at_low_fpr(a: dict[str, Any]) -> Any:
    """Membership TPR at 0.1% FPR, or None when the attack did not report it."""
    return (a.get("tpr_at_fpr") or {}).get("0.001")
