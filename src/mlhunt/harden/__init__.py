"""``mlhunt harden``: apply a mitigation to a scenario, re-run the attacks that validated the
threat, and report the before/after trade-off (utility and attack measures) as findings.

Each mitigation is a small self-describing unit: a YAML file (id, title, the threat and attacks
it addresses, default parameters) beside its module in ``mlhunt/harden/mitigations/``.
"""

from mlhunt.harden.api import HardenReport, harden, parse_params

__all__ = ["HardenReport", "harden", "parse_params"]
