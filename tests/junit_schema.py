"""Validate a JUnit XML file that pytest wrote, the way CI will read it.

Always against our own schema, tests/schemas/junit-ci.xsd, which ships with the
repository. Also against the legacy ../shared/schemas/junit-10.xsd when a
checkout sits next to that directory; a fresh clone has none, and the tests must
not need it.

Beware: junit-10.xsd (pytest's own test schema) names the per-test error element
`errors`, not `error`, so it rejects every file in which a test errored in a
fixture. Our schema accepts `error`, which Jenkins and GitLab both read.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import xmlschema

OWN_XSD = Path(__file__).resolve().parent / "schemas" / "junit-ci.xsd"
SHARED_XSD = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "junit-10.xsd"


@cache
def _schema(path: Path) -> xmlschema.XMLSchema:
    # Building a schema costs far more than validating a report with it.
    return xmlschema.XMLSchema(str(path))


def schema_paths() -> list[Path]:
    """The schemas validate_junit() uses here: ours, then junit-10.xsd if present."""
    return [OWN_XSD, *([SHARED_XSD] if SHARED_XSD.is_file() else [])]


def validate_junit(path: Path) -> list[str]:
    """Validate the JUnit file at path; return the names of the schemas it passed.

    Raises xmlschema.XMLSchemaValidationError (or XMLResourceParseError for a file
    that is not XML) at the first schema the file does not satisfy.
    """
    names = []
    has_error = "<error" in Path(path).read_text(encoding="utf-8")
    for xsd in schema_paths():
        if xsd == SHARED_XSD and has_error:
            continue  # junit-10.xsd knows no <error> element (see above)
        _schema(xsd).validate(str(path))
        names.append(xsd.name)
    return names
