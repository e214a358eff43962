"""Threat modelling: the rule catalog as data, the engine that applies it, and risk scoring."""

from mlhunt.threatmodel.catalog import Catalog, default_catalog, load_catalog
from mlhunt.threatmodel.engine import ThreatModel, build_threat_model

__all__ = ["Catalog", "ThreatModel", "build_threat_model", "default_catalog", "load_catalog"]
