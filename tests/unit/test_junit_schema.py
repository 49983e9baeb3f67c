"""Our JUnit schema accepts what pytest really writes and rejects what CI would misread.

The files are generated, not hand-written: pytester runs a small module with every
kind of outcome under junit_family=xunit2 (as our CI jobs do), so a pytest upgrade
that changes the file shows up here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema

from tests import junit_schema
from tests.junit_schema import OWN_XSD, SHARED_XSD, validate_junit

pytest_plugins = ("pytester",)

# One test per element CI reads: a pass with captured stdout/stderr and a suite
# property, a failure, an error raised in a fixture, a skip, an xfail.
OUTCOMES = """
import sys

import pytest


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_pass(record_testsuite_property):
    record_testsuite_property("stack", "testbed")
    print("to stdout")
    print("to stderr", file=sys.stderr)


def test_fail():
    print("before failing")
    assert 1 == 2, "one is not two"


def test_error(broken):
    pass


def test_skip():
    pytest.skip("not today")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False
"""

# A module with no fixture error: the legacy junit-10.xsd cannot accept <error>.
NO_ERROR = OUTCOMES.replace("def test_error(broken):\n    pass\n", "")

# record_property under xunit2 warns, then writes <properties> inside the testcase.
CASE_PROPERTY = """
def test_with_property(record_property):
    record_property("evidence", "x")
"""

MakeJunit = Callable[[str], Path]


@pytest.fixture
def make_junit(pytester: pytest.Pytester) -> MakeJunit:
    """make_junit(module source) -> the JUnit file pytest wrote for it."""

    def make(source: str) -> Path:
        pytester.makepyfile(test_sample=source)
        junit = pytester.path / "junit.xml"
        # -p no:stackcheck: the file is pytest's own; our plugin is tested elsewhere.
        pytester.runpytest(
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit2",
            "-o",
            "junit_logging=all",
            "-p",
            "no:stackcheck",
            "-p",
            "no:cacheprovider",
        )
        assert junit.is_file()
        return junit

    return make


def own_errors(path: Path) -> list[str]:
    """Why our schema rejects the file at path (empty when it is valid)."""
    return [error.reason or str(error) for error in xmlschema.XMLSchema(OWN_XSD).iter_errors(path)]


def test_every_outcome_pytest_writes_is_valid(make_junit: MakeJunit) -> None:
    junit = make_junit(OUTCOMES)
    root = ET.parse(junit).getroot()
    # The file must hold every element the schema is about, or this proves little.
    tags = {element.tag for element in root.iter()}
    assert {"testsuites", "testsuite", "properties", "property", "testcase"} <= tags
    assert {"failure", "error", "skipped", "system-out", "system-err"} <= tags
    assert root.find("testsuite/properties/property[@name='stack']") is not None
    assert own_errors(junit) == []


def test_validate_junit_uses_our_schema_and_the_shared_one_when_present(
    make_junit: MakeJunit,
) -> None:
    names = validate_junit(make_junit(NO_ERROR))
    expected = ["junit-ci.xsd", *(["junit-10.xsd"] if SHARED_XSD.is_file() else [])]
    assert names == expected


def test_without_shared_only_our_schema_is_used(
    make_junit: MakeJunit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A fresh clone: nothing next to the repository.
    monkeypatch.setattr(junit_schema, "SHARED_XSD", tmp_path / "absent" / "junit-10.xsd")
    assert validate_junit(make_junit(OUTCOMES)) == ["junit-ci.xsd"]


def test_a_present_second_schema_is_enforced(
    make_junit: MakeJunit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Stand-in for junit-10.xsd that no pytest file satisfies: the root must be <other>.
    strict = tmp_path / "junit-10.xsd"
    strict.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xs:element name="other"/></xs:schema>'
    )
    monkeypatch.setattr(junit_schema, "SHARED_XSD", strict)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate_junit(make_junit(NO_ERROR))


@pytest.mark.skipif(not SHARED_XSD.is_file(), reason=f"no {SHARED_XSD}")
def test_shared_schema_is_not_used_on_files_with_error_elements(make_junit: MakeJunit) -> None:
    # junit-10.xsd spells the element `errors`; pytest, Jenkins and GitLab `error`.
    # It rejects such a file, so validate_junit() uses it only on files without one.
    junit = make_junit(OUTCOMES)
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="'error'"):
        junit_schema._schema(SHARED_XSD).validate(str(junit))
    assert validate_junit(junit) == ["junit-ci.xsd"]
    assert validate_junit(make_junit(NO_ERROR)) == ["junit-ci.xsd", "junit-10.xsd"]


def _drop_testcase_name(root: ET.Element) -> None:
    case = root.find(".//testcase")
    assert case is not None
    del case.attrib["name"]


def _unknown_child(root: ET.Element) -> None:
    case = root.find(".//testcase")
    assert case is not None
    ET.SubElement(case, "attachment").text = "screenshot.png"


def _testcase_properties(root: ET.Element) -> None:
    case = root.find(".//testcase")
    assert case is not None
    properties = ET.SubElement(case, "properties")
    ET.SubElement(properties, "property", name="evidence", value="x")


def _drop_failure_message(root: ET.Element) -> None:
    failure = root.find(".//failure")
    assert failure is not None
    del failure.attrib["message"]


def _drop_suite_counts(root: ET.Element) -> None:
    suite = root.find("testsuite")
    assert suite is not None
    del suite.attrib["tests"]


def _textual_time(root: ET.Element) -> None:
    case = root.find(".//testcase")
    assert case is not None
    case.set("time", "fast")


def _testcase_as_root(root: ET.Element) -> None:
    case = root.find(".//testcase")
    assert case is not None
    root.clear()
    root.tag = "testcase"
    root.attrib.update(case.attrib)


def _stray_attribute(root: ET.Element) -> None:
    case = root.find(".//testcase")
    assert case is not None
    case.set("file", "test_sample.py")  # xunit1's, dropped by xunit2


# (mutation, a word of the reason our schema must give)
INVALID: dict[str, tuple[Callable[[ET.Element], None], str]] = {
    "testcase-without-name": (_drop_testcase_name, "name"),
    "unknown-element-in-testcase": (_unknown_child, "attachment"),
    "properties-in-testcase": (_testcase_properties, "properties"),
    "failure-without-message": (_drop_failure_message, "message"),
    "testsuite-without-tests": (_drop_suite_counts, "tests"),
    "time-not-a-number": (_textual_time, "fast"),
    "testcase-as-root": (_testcase_as_root, "testcase"),
    "xunit1-attribute": (_stray_attribute, "file"),
}


@pytest.mark.parametrize("variant", sorted(INVALID))
def test_invalid_variants_fail(make_junit: MakeJunit, tmp_path: Path, variant: str) -> None:
    mutate, word = INVALID[variant]
    tree = ET.parse(make_junit(OUTCOMES))
    mutate(tree.getroot())
    broken = tmp_path / f"{variant}.xml"
    tree.write(broken, encoding="utf-8", xml_declaration=True)
    errors = own_errors(broken)
    assert errors, f"{variant} passed our schema"
    assert any(word in error for error in errors), errors
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate_junit(broken)


def test_record_property_under_xunit2_is_rejected(make_junit: MakeJunit) -> None:
    # Not hand-made: what pytest itself writes when a test uses record_property.
    junit = make_junit(CASE_PROPERTY)
    assert ET.parse(junit).getroot().find(".//testcase/properties") is not None
    assert any("properties" in error for error in own_errors(junit))
