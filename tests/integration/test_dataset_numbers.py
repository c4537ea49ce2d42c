"""The sample data set through the agents: HQ's numbers equal plain arithmetic on the CSV.

Every branch's agent imports the pipeline sheet and pushes it; HQ's per-region,
per-branch and per-rep figures are then compared with an independent
computation straight from the CSV files (plain Python here, not the server's).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date

import orjson
import pytest

from branch_agent.importer import import_file
from branch_agent.outbox import Outbox
from hq_server.extensions import db
from hq_server.services.auth import issue_agent_token
from hq_server.services.org import import_org, read_org_file
from shared.codes import slug

PERIOD = "from=2016-01-01&to=2017-12-31"


def _expected(dataset_dir) -> dict[str, dict]:
    """Won, lost, won revenue and open deals by stage per region, branch and rep, from the CSV."""
    with (dataset_dir / "sales_teams.csv").open() as fh:
        teams = {r["sales_agent"]: r for r in csv.DictReader(fh)}
    out = {
        level: defaultdict(lambda: {"won": 0, "lost": 0, "won_amount": 0.0, "lead": 0, "visit": 0})
        for level in ("region", "branch", "rep")
    }
    with (dataset_dir / "sales_pipeline.csv").open() as fh:
        for row in csv.DictReader(fh):
            team = teams[row["sales_agent"]]
            keys = {
                "region": slug(team["regional_office"]),
                "branch": slug(team["manager"]),
                "rep": slug(row["sales_agent"]),
            }
            for level, key in keys.items():
                figures = out[level][key]
                stage = row["deal_stage"]
                if stage == "Won":
                    figures["won"] += 1
                    figures["won_amount"] += float(row["close_value"])
                elif stage == "Lost":
                    figures["lost"] += 1
                elif stage == "Engaging":
                    figures["visit"] += 1
                else:
                    figures["lead"] += 1
    return out


@pytest.fixture
def imported(app, client, dataset_dir, tmp_path):
    """Load the org, then let every branch's agent import and push the pipeline sheet."""
    with app.app_context():
        import_org(read_org_file(dataset_dir / "sales_teams.csv"), "Asia/Shanghai")
        db.session.flush()
        branches = sorted(
            {
                slug(r["branch_name"].removesuffix("'s team"))
                for r in read_org_file(dataset_dir / "sales_teams.csv")
            }
        )
        tokens = {code: issue_agent_token(code) for code in branches}
        db.session.commit()
    for code, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        state = client.get("/api/v1/sync/pull", headers=headers).get_json()
        with Outbox(tmp_path / code) as outbox:
            outbox.set_cache(branch=state["branch"], reps=state["reps"])
            report = import_file(
                outbox, dataset_dir / "sales_pipeline.csv", undated_on=date(2017, 12, 31)
            )
            assert report.count("refused") == 0, [r for r in report.rows if r.status == "refused"][
                :3
            ]
            while events := outbox.claim(1000):
                body = orjson.dumps({"agent": {"id": code, "version": "t"}, "events": events})
                answer = client.post("/api/v1/sync/push", data=body, headers=headers)
                assert answer.get_json()["counts"]["rejected"] == 0
                outbox.settle(answer.get_json()["results"])
    return tokens


@pytest.fixture
def hq_headers(app, imported):
    """An HQ manager's token on the sample company."""
    from hq_server.services.auth import add_user, issue_user_token

    with app.app_context():
        token = issue_user_token(add_user("numbers", "hq_manager", "HQ"))
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_hq_figures_equal_the_spreadsheet_for_every_region_branch_and_rep(
    client, hq_headers, dataset_dir
):
    all_expected = _expected(dataset_dir)
    for level in ("region", "branch", "rep"):
        expected = all_expected[level]
        body = client.get(
            f"/api/v1/metrics?unit=HQ&{PERIOD}&by={level}", headers=hq_headers
        ).get_json()
        actual = {row["node"]: row for row in body["rows"]}
        assert set(actual) >= set(expected), level
        # A rep of the org sheet with no deal still gets a row: all zeros, nothing open.
        for node in set(actual) - set(expected):
            assert actual[node]["won"] == actual[node]["lost"] == actual[node]["deals_opened"] == 0
            assert not any(actual[node]["open_by_stage"].values()), node
        for node, figures in expected.items():
            row = actual[node]
            assert (row["won"], row["lost"]) == (figures["won"], figures["lost"]), node
            assert row["won_amount"] == pytest.approx(figures["won_amount"]), node
            assert row["open_by_stage"]["lead"] == figures["lead"], node
            assert row["open_by_stage"]["visit"] == figures["visit"], node
            won, lost = figures["won"], figures["lost"]
            assert row["win_rate"] == pytest.approx(won / (won + lost)), node


@pytest.mark.parametrize("level", ["region", "branch", "rep"])
def test_pages_of_metrics_rows_put_together_are_the_whole_table(client, hq_headers, level):
    url = f"/api/v1/metrics?unit=HQ&{PERIOD}&by={level}"
    whole = client.get(url, headers=hq_headers).get_json()
    codes = [row["node"] for row in whole["rows"]]
    assert codes == sorted(codes) and len(codes) == whole["paging"]["total"]
    paged, offset = [], 0
    while True:
        body = client.get(f"{url}&offset={offset}&limit=4", headers=hq_headers).get_json()
        assert body["paging"] == {"offset": offset, "limit": 4, "total": len(codes)}
        if not body["rows"]:
            break
        assert len(body["rows"]) <= 4
        paged += body["rows"]
        offset += 4
    assert paged == whole["rows"]
    assert offset == 4 * -(-len(codes) // 4)
