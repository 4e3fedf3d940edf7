"""Checking a catalog document before anything is stored (PROTOCOL §5: invalid changes nothing).

Every problem is collected in one pass, each with the path of the offending value, so an
integrator fixes a document in one round trip instead of one error per upload.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sitewatch.catalog.models import CODE, Catalog, Enterprise, Gateway, Point, Site, Tag, Zone
from sitewatch.catalog.rules import DUST_CHECKS, FAMILIES

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})

Item = Enterprise | Site | Gateway | Zone | Point | Tag
_SECTIONS: dict[str, type[Item]] = {
    "enterprises": Enterprise,
    "sites": Site,
    "gateways": Gateway,
    "zones": Zone,
    "points": Point,
    "tags": Tag,
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a document: `path` like "points[3].rules[0].above", "" for the whole."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Existing:
    """What the database already holds, so a document may refer to it without repeating it.

    `sites` maps each site to its enterprise; the per-site sets hold (site, code). Nothing in
    a document refers to zones or gateways yet, so only the loader reads those two.
    """

    enterprises: set[str] = field(default_factory=set)
    sites: dict[str, str] = field(default_factory=dict)
    zones: set[tuple[str, str]] = field(default_factory=set)
    points: set[tuple[str, str]] = field(default_factory=set)
    tags: set[tuple[str, str]] = field(default_factory=set)
    gateways: set[tuple[str, str]] = field(default_factory=set)


def validate_catalog(doc: object, existing: Existing) -> tuple[Catalog | None, list[Problem]]:
    """The validated catalog, or None with every problem of the document.

    A reference may point to the document or to `existing`. References are resolved against
    the codes the document spells, even in otherwise invalid entries, so one mistake is
    reported once rather than again at every entry that refers to it. Problems come in
    document order.
    """
    if not isinstance(doc, dict):
        return None, [Problem("", "a catalog document is an object with the lists " + ", ".join(_SECTIONS))]
    problems = [
        Problem(str(key), f"unknown section (expected {', '.join(_SECTIONS)})") for key in doc if key not in _SECTIONS
    ]
    raw: dict[str, list[Any]] = {}
    for name in _SECTIONS:
        items = doc.get(name)
        if items is None:  # absent, or a YAML section left empty
            items = []
        elif not isinstance(items, list):
            problems.append(Problem(name, "must be a list"))
            items = []
        raw[name] = items
    refs = _References.of(raw, existing)
    valid: dict[str, list[Item]] = {name: [] for name in _SECTIONS}
    for name, model in _SECTIONS.items():
        first: dict[tuple[str, str], int] = {}
        for i, item in enumerate(raw[name]):
            path = f"{name}[{i}]"
            key = _key(name, item)
            if key is not None and first.setdefault(key, i) != i:
                scope = " on the same site" if key[0] else ""
                problems.append(Problem(f"{path}.code", f"duplicate of {name}[{first[key]}]{scope}"))
            try:
                valid[name].append(model.model_validate(item))
            except ValidationError as exc:
                problems += _problems(path, exc)
            problems += [Problem(f"{path}.{where}", message) for where, message in refs.check(name, item)]
            problems += [
                Problem(where, "text may not contain the NUL character (U+0000)") for where in _nul(item, path)
            ]
    if problems:
        return None, problems
    return Catalog.model_validate(valid), []  # entries are instances now: not validated again


def _nul(value: object, path: str) -> Iterator[str]:
    """The paths of the string values holding U+0000, which PostgreSQL text cannot store (a key
    holding one is an unknown field)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul(item, f"{path}[{i}]")


def _is_code(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and CODE.fullmatch(value) is not None


def _code(item: object, key: str) -> str | None:
    """The code at `key` of a raw entry, None when absent or invalid (the model reports that)."""
    value = item.get(key) if isinstance(item, dict) else None
    return value if _is_code(value) else None


def _key(section: str, item: object) -> tuple[str, str] | None:
    """What must be unique in a raw entry: (site, code), site "" for enterprises and sites."""
    code = _code(item, "code")
    site = "" if section in ("enterprises", "sites") else _code(item, "site")
    return None if code is None or site is None else (site, code)


@dataclass(frozen=True)
class _References:
    """The codes a reference may name: the document's (as spelt) and the database's."""

    enterprises: set[str]
    sites: set[str]
    points: set[tuple[str, str]]
    tags: set[tuple[str, str]]
    owners: dict[str, str]

    @classmethod
    def of(cls, raw: dict[str, list[Any]], existing: Existing) -> _References:
        def codes(name: str) -> set[str]:
            return {code for item in raw[name] if (code := _code(item, "code")) is not None}

        def on_site(name: str) -> set[tuple[str, str]]:
            return {key for item in raw[name] if (key := _key(name, item)) is not None}

        return cls(
            enterprises=codes("enterprises") | existing.enterprises,
            sites=codes("sites") | set(existing.sites),
            points=on_site("points") | existing.points,
            tags=on_site("tags") | existing.tags,
            owners=existing.sites,
        )

    def check(self, section: str, item: object) -> Iterator[tuple[str, str]]:
        """(field, message) for each reference of an entry that names nothing.

        Raw entries are checked, so an entry with other problems still has its references
        checked; values that are not valid codes are left to the model's report.
        """
        site = _code(item, "site")
        if section == "sites":
            yield from self._enterprise(_code(item, "code"), _code(item, "enterprise"))
        elif site is None or section == "enterprises":
            return
        elif site not in self.sites:
            yield "site", f"unknown site {site!r}"
        elif section == "points":
            pair = _code(item, "pair")
            if pair is not None and (site, pair) not in self.points:
                yield "pair", f"no point {pair!r} on site {site}"
        elif section == "zones":
            allow = item.get("allow") if isinstance(item, dict) else None
            for k, tag in enumerate(allow if isinstance(allow, list) else []):
                if _is_code(tag) and (site, tag) not in self.tags:
                    yield f"allow[{k}]", f"no tag {tag!r} on site {site}"

    def _enterprise(self, site: str | None, enterprise: str | None) -> Iterator[tuple[str, str]]:
        if enterprise is None:
            return
        if enterprise not in self.enterprises:
            yield "enterprise", f"unknown enterprise {enterprise!r}"
        owner = self.owners.get(site or "", enterprise)
        if owner != enterprise:
            yield "enterprise", f"site {site} belongs to {owner}: a site cannot move to another enterprise"


def _problems(prefix: str, exc: ValidationError) -> list[Problem]:
    """Pydantic errors as problems; inputs are left out so a password never reaches a reply."""
    return [
        _problem(prefix, error)
        for error in exc.errors(include_url=False, include_input=False)
        # Only ever a consequence of another error of the same entry.
        if error["type"] != "default_factory_not_called"
    ]


def _problem(prefix: str, error: ErrorDetails) -> Problem:
    path = prefix + _path(error["loc"])
    ctx = error.get("ctx", {})
    if error["type"] == "value_error":
        return Problem(path, str(ctx["error"]))
    if error["type"] == "extra_forbidden":
        return Problem(path, "unknown field")
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        discriminator = ctx["discriminator"].strip("'")  # pydantic quotes it
        if "tag" not in ctx:
            return Problem(f"{path}.{discriminator}", "Field required")
        return Problem(f"{path}.{discriminator}", f"{ctx['tag']!r} is not one of {ctx['expected_tags']}")
    if error["loc"][-1:] == ("[key]",):
        return Problem(path, f"invalid key: {error['msg']}")
    return Problem(path, error["msg"])


def _path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a document path, without the tags pydantic adds for rule unions.

    Within `rules[i]` pydantic inserts the rule family (and for dust the check) before the
    field; those are not keys of the document.
    """
    path = ""
    tags: frozenset[str] = frozenset()
    previous: int | str = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            tags = FAMILIES if previous == "rules" else frozenset()
        elif part in tags:
            tags = DUST_CHECKS if part == "dust" else frozenset()
        else:
            tags = frozenset()
            path += "" if part == "[key]" else f".{part}"
        previous = part
    return path


def parse_document(body: bytes, content_type: str) -> object:
    """The document in `body`: YAML for the YAML media types, JSON otherwise.

    Raises ValueError with the line and column of a syntax error; a key repeated within one
    object is an error too, as it would otherwise silently override the first.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the document is not UTF-8 text (invalid byte at offset {exc.start})") from exc
    if content_type.split(";", 1)[0].strip().lower() in YAML_TYPES:
        return _load_yaml(text)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"invalid JSON: duplicate key {key!r}")
        result[key] = value
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated within one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # the base class reports it
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _load_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"invalid YAML{where}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc
