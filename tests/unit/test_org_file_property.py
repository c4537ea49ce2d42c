"""Whatever an org file holds, reading it either gives rows or refuses it with the reason."""

from __future__ import annotations

import csv
import io

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq_server.services.org import OrgImportError, check_consistent, read_org_file, validate_rows

HEADERS = [
    ["sales_agent", "manager", "regional_office"],
    [
        "region_code",
        "region_name",
        "branch_code",
        "branch_name",
        "rep_code",
        "rep_name",
        "timezone",
    ],
    ["region_code", "branch_code"],
]
CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["EAST", "SH01", "SH01-1", "Asia/Shanghai", "Mars/Base", "", '"', "a\nb"]),
)
YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6), st.just("EAST")),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["regions", "branches", "reps", "code", "name", "timezone", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read(path) -> None:
    try:
        check_consistent(validate_rows(read_org_file(path)))
    except OrgImportError as exc:
        assert str(exc)  # refused, with a reason


@FAST
@given(st.sampled_from(HEADERS), st.lists(st.lists(CELLS, max_size=9), max_size=6))
def test_any_csv_org_file_is_read_or_refused(tmp_path_factory, header, rows):
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("org") / "org.csv"
    path.write_text(text.getvalue(), encoding="utf-8")
    _read(path)


@FAST
@given(YAML_VALUES)
def test_any_yaml_org_file_is_read_or_refused(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("org") / "org.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    _read(path)
