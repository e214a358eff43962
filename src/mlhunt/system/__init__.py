"""The system description: schema, loading with clear errors, and the resolved DFD."""

from mlhunt.system.loader import load_system, parse_system, system_from_dict
from mlhunt.system.model import SystemDescription

__all__ = ["SystemDescription", "load_system", "parse_system", "system_from_dict"]
