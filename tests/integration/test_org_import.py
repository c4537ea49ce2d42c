"""Loading the org tree: the sample sheet, YAML, re-imports, moves, bad rows."""

from __future__ import annotations

import csv
import re
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.exc import DetachedInstanceError

from hq_server.extensions import db
from hq_server.models import OrgUnit, Rep
from hq_server.services.org import (
    OrgImportError,
    active_unit,
    import_org,
    read_active_unit,
    read_org_file,
)
from tests.factories import EventMaker, push


def _counts():
    rows = db.session.execute(
        select(OrgUnit.kind, func.count()).where(OrgUnit.active_to.is_(None)).group_by(OrgUnit.kind)
    ).all()
    return dict(rows) | {"rep": db.session.scalar(select(func.count()).select_from(Rep))}


def test_the_sales_team_sheet_imports_as_regions_branches_and_reps(ctx, dataset_dir):
    report = import_org(read_org_file(dataset_dir / "sales_teams.csv"), "Asia/Shanghai")
    db.session.commit()
    assert report.created == {"region": 3, "branch": 6, "rep": 35}
    assert _counts() == {"hq": 1, "region": 3, "branch": 6, "rep": 35}
    branch = db.session.scalar(select(OrgUnit).where(OrgUnit.code == "DUSTIN-BRINKMANN"))
    assert branch.parent.code == "CENTRAL"
    assert branch.path == f"{branch.parent.path}{branch.id}/"
    rep = db.session.scalar(select(Rep).where(Rep.code == "ANNA-SNELLING"))
    assert rep.branch_id == branch.id


def test_importing_the_same_sheet_twice_changes_nothing(ctx, dataset_dir):
    rows = read_org_file(dataset_dir / "sales_teams.csv")
    import_org(rows, "Asia/Shanghai")
    db.session.commit()
    again = import_org(rows, "Asia/Shanghai")
    db.session.commit()
    assert again.created == {"region": 0, "branch": 0, "rep": 0}
    assert again.moved == []
    assert _counts() == {"hq": 1, "region": 3, "branch": 6, "rep": 35}


def test_yaml_org_files_with_time_zones(ctx, tmp_path):
    path = tmp_path / "org.yaml"
    path.write_text(
        "regions:\n"
        "  - code: EU\n    name: Europe\n    timezone: Europe/Berlin\n"
        "    branches:\n"
        "      - code: BER01\n        name: Berlin\n"
        "        reps: [{code: BER01-1, name: Ada}, {code: BER01-2, name: Max}]\n"
        "      - code: LIS01\n        timezone: Europe/Lisbon\n"
    )
    import_org(read_org_file(path), "Asia/Shanghai")
    db.session.commit()
    units = {u.code: u for u in db.session.scalars(select(OrgUnit))}
    assert units["BER01"].timezone == "Europe/Berlin"
    assert units["LIS01"].timezone == "Europe/Lisbon"
    assert _counts()["rep"] == 2


def test_bad_rows_are_reported_by_number_and_nothing_is_stored(ctx, tmp_path):
    path = tmp_path / "org.csv"
    path.write_text(
        "region_code,region_name,branch_code,branch_name,rep_code,rep_name\n"
        "EAST,East,SH01,Shanghai,SH01-1,Ann\n"
        "east lower,East,SH02,Shanghai 2,SH02-1,Bo\n"
        "EAST,East,,Nameless,SH03-1,Cy\n"
    )
    with pytest.raises(OrgImportError) as info:
        import_org(read_org_file(path), "Asia/Shanghai")
    db.session.rollback()
    assert set(info.value.errors) == {"row 3", "row 4"}
    assert "region_code" in info.value.errors["row 3"]
    assert "branch_code" in info.value.errors["row 4"]
    assert db.session.scalar(select(func.count()).select_from(OrgUnit)) == 0


def test_an_unknown_csv_header_is_refused(ctx, tmp_path):
    path = tmp_path / "org.csv"
    path.write_text("name,boss\nA,B\n")
    with pytest.raises(OrgImportError, match="unrecognised CSV header"):
        read_org_file(path)


def test_rows_with_too_many_or_too_few_cells_are_named(ctx, tmp_path):
    teams = tmp_path / "teams.csv"
    teams.write_text(
        "sales_agent,manager,regional_office\nAnn,Bob,East\nCy,Dee\nEve,Fay,West,spare\n"
    )
    with pytest.raises(OrgImportError, match="2 row") as info:
        read_org_file(teams)
    assert info.value.errors == {
        "row 3": {"regional_office": ["Missing data for required field."]},
        "row 4": {"_row": ["more cells than the header has columns"]},
    }
    org = tmp_path / "org.csv"
    org.write_text(
        "region_code,region_name,branch_code,branch_name\nEAST,East,SH01,Shanghai,extra\n"
    )
    with pytest.raises(OrgImportError) as info:
        read_org_file(org)
    assert info.value.errors == {"row 2": {"_row": ["more cells than the header has columns"]}}


def test_a_file_that_says_two_things_of_one_code_is_refused(ctx, tmp_path):
    path = tmp_path / "org.csv"
    path.write_text(
        "region_code,region_name,branch_code,branch_name,rep_code,rep_name\n"
        "EAST,East,SH01,Shanghai,SH01-1,Ann\n"
        "WEST,West,EAST,East branch,,\n"  # a region's code as a branch
        "WEST,West,SH01,Shanghai,,\n"  # a branch under a second region
        "EAST,East,HZ01,Hangzhou,SH01-1,Ann\n"  # a rep under a second branch
    )
    with pytest.raises(OrgImportError, match="3 row") as info:
        import_org(read_org_file(path), "Asia/Shanghai")
    db.session.rollback()

    assert info.value.errors == {
        "row 3": {"branch_code": ["EAST is a region in row 2"]},
        "row 4": {"region_code": ["SH01 is under EAST in row 2"]},
        "row 5": {"branch_code": ["SH01-1 is under SH01 in row 2"]},
    }
    assert db.session.scalar(select(func.count()).select_from(Rep)) == 0


def test_a_cell_too_large_for_csv_is_refused_with_its_line(ctx, tmp_path):
    path = tmp_path / "org.csv"
    huge = "x" * (csv.field_size_limit() + 1)
    path.write_text(
        "region_code,region_name,branch_code,branch_name\n"
        "EAST,East,SH01,Shanghai\n"
        f'EAST,East,SH02,"{huge}"\n'
    )
    with pytest.raises(OrgImportError, match="line 3: not readable as CSV"):
        read_org_file(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("- EAST\n- WEST\n", "the file: expected a mapping with 'regions'"),
        ("regions: EAST\n", "the file.regions: expected a list of mappings"),
        ("regions:\n  - code: EAST\n    branches: [SH01]\n", "regions[0].branches: expected"),
        (
            "regions:\n  - code: EAST\n    branches:\n      - code: SH01\n        reps: [Ann]\n",
            "regions[0].branches[0].reps: expected a list of mappings",
        ),
        ("regions: " + "[" * 100_000 + "]" * 100_000 + "\n", "not valid YAML: nested too deeply"),
    ],
)
def test_a_yaml_file_of_another_shape_is_refused_naming_where(ctx, tmp_path, text, where):
    path = tmp_path / "org.yaml"
    path.write_text(text)
    with pytest.raises(OrgImportError, match=re.escape(where)):
        read_org_file(path)


def test_a_branch_that_moves_region_keeps_its_history(app, client, company):
    maker = EventMaker("SH01-001")
    old_deal = str(uuid.uuid4())
    push(client, company.agent("SH01"), [maker.deal_opened(old_deal)])
    with app.app_context():
        report = import_org(
            [
                {
                    "region_code": "WEST",
                    "region_name": "West",
                    "branch_code": "SH01",
                    "branch_name": "Branch SH01",
                    "rep_code": "SH01-001",
                    "rep_name": "Rep SH01-001",
                }
            ],
            "Asia/Shanghai",
        )
        db.session.commit()
        assert report.moved == ["SH01"]
        rows = db.session.scalars(
            select(OrgUnit).where(OrgUnit.code == "SH01").order_by(OrgUnit.id)
        ).all()
        assert [r.active_to is None for r in rows] == [False, True]
        assert rows[1].parent.code == "WEST"
    # The same agent token keeps working: it names the branch, not the row.
    new = push(
        client, company.agent("SH01"), [maker.deal_opened(), maker.make("deal.won", deal=old_deal)]
    )
    assert new.get_json()["counts"]["accepted"] == 2
    headers = company.user("hq_manager")
    east = client.get(
        "/api/v1/funnel?unit=EAST&from=2026-11-01&to=2026-11-30", headers=headers
    ).get_json()
    west = client.get(
        "/api/v1/funnel?unit=WEST&from=2026-11-01&to=2026-11-30", headers=headers
    ).get_json()
    sh01 = client.get(
        "/api/v1/funnel?unit=SH01&from=2026-11-01&to=2026-11-30", headers=headers
    ).get_json()
    assert east["cohort"]["deals_opened"] == 1  # opened before the move
    assert west["cohort"]["deals_opened"] == 1  # opened after it
    assert sh01["cohort"]["deals_opened"] == 2  # the branch sees all its history
    with app.app_context():
        read = read_active_unit("SH01")  # the push's read of its branch: the new row
        loaded = active_unit("SH01")
        columns = [c.key for c in OrgUnit.__table__.columns]
        assert [getattr(read, c) for c in columns] == [getattr(loaded, c) for c in columns]
        assert read.path_ids == loaded.path_ids and read.active_to is None
        assert read not in db.session  # detached: nothing of it is written back
        with pytest.raises(DetachedInstanceError):
            read.parent  # noqa: B018  (a relationship is not loaded behind the caller's back)
        assert read_active_unit("NOPE") is None
