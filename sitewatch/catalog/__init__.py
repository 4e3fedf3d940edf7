"""The catalog: what each site monitors and by which rules, as loaded by `PUT /catalog`."""

from sitewatch.catalog.defaults import POINT_KINDS, default_rules
from sitewatch.catalog.models import Catalog, Enterprise, Gateway, Point, Site, Tag, Zone
from sitewatch.catalog.rules import FAMILIES, PointRule, RuleSpec
from sitewatch.catalog.validate import Existing, Problem, parse_document, validate_catalog

__all__ = [
    "FAMILIES",
    "POINT_KINDS",
    "Catalog",
    "Enterprise",
    "Existing",
    "Gateway",
    "Point",
    "PointRule",
    "Problem",
    "RuleSpec",
    "Site",
    "Tag",
    "Zone",
    "default_rules",
    "parse_document",
    "validate_catalog",
]
