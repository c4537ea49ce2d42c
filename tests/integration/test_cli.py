"""The hq-server command against the test database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from hq_server.cli import main
from hq_server.extensions import db


@pytest.fixture
def run(services):
    env = {
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "HQ_INSTANCE_DIR": str(services.instance_dir),
        "HQ_QUEUE": services.queue_name,
    }

    def invoke(*args):
        return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_org_import_tokens_and_users_from_the_command_line(app, run, dataset_dir):
    result = run("org", "import", str(dataset_dir / "sales_teams.csv"))
    assert result.exit_code == 0, result.output
    assert "3 region(s), 6 branch(es), 35 rep(s)" in result.output
    listing = run("org", "list").output
    assert "  CENTRAL  Central (region" in listing
    token = run("agent-token", "CARA-LOSCH").output.strip()
    assert token.startswith("hqa_")
    user = run("user", "add", "ann", "--role", "region_manager", "--scope", "EAST")
    assert user.exit_code == 0
    user_token = user.output.strip().splitlines()[-1]
    with app.app_context():
        stored = db.session.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
    # Only hashes are kept: the printed tokens appear nowhere in the table.
    assert len(stored) == 2
    assert all(
        token.encode() not in bytes(h) and user_token.encode() not in bytes(h) for h in stored
    )
    client = app.test_client()
    resp = client.get("/api/v1/funnel?unit=EAST", headers={"Authorization": f"Bearer {user_token}"})
    assert resp.status_code == 200


def test_bad_input_gets_a_clear_message_and_a_failing_exit_code(app, run, tmp_path):
    assert run("agent-token", "NOWHERE").exit_code == 1
    bad_user = run("user", "add", "bob", "--role", "finance", "--scope", "NOWHERE")
    assert bad_user.exit_code == 1 and "no active org unit" in bad_user.output
    for name in ("eve\x01", "eve\nadmin logged in", " eve", "e"):  # as the console refuses
        bad_name = run("user", "add", name, "--role", "finance", "--scope", "HQ")
        assert bad_name.exit_code == 1 and "a user name has" in bad_name.output, repr(name)
    for option, value, message in [
        ("--email", "bob at example", "an e-mail address is written like"),
        ("--name", "B" * 201, "a name has at most 200 characters"),
    ]:
        bad_profile = run("user", "add", "bob", "--role", "finance", "--scope", "HQ", option, value)
        assert bad_profile.exit_code == 1 and message in bad_profile.output
    bad_file = tmp_path / "org.csv"
    bad_file.write_text("region_code,region_name,branch_code,branch_name\nbad code,x,B1,y\n")
    result = run("org", "import", str(bad_file))
    assert result.exit_code == 2
    assert "row 2" in result.output


def test_an_org_file_in_another_encoding_is_refused_then_read_when_named(app, run, tmp_path):
    sheet = tmp_path / "org.csv"
    sheet.write_bytes(
        "region_code,region_name,branch_code,branch_name,rep_code,rep_name\n"
        "SOUTH,华南,GZ01,广州分公司,GZ01-001,张三\n".encode("gb18030")
    )
    refused = run("org", "import", str(sheet))
    assert refused.exit_code == 2 and "--encoding" in refused.output
    assert run("org", "import", str(sheet), "--encoding", "gb18030").exit_code == 0
    with app.app_context():
        names = db.session.execute(
            text(
                "SELECT u.name, r.name FROM reps r JOIN org_units u ON u.id = r.branch_id "
                "WHERE r.code = 'GZ01-001'"
            )
        ).one()
    assert tuple(names) == ("广州分公司", "张三")


def test_rebuild_is_queued_through_the_outbox(app, run, company):
    assert run("rebuild", "--branch", "SH01").exit_code == 0
    assert run("rebuild", "--branch", "SH01").exit_code == 0  # still one waiting job
    with app.app_context():
        keys = db.session.execute(text("SELECT key, task FROM job_outbox")).all()
    assert [tuple(k) for k in keys] == [("rebuild_rollups:SH01", "rebuild_rollups")]


@pytest.mark.parametrize("code", ["NOPE", "EAST"])  # no such unit; a region, not a branch
def test_a_rebuild_of_no_branch_is_refused(app, run, company, code):
    result = run("rebuild", "--branch", code)

    assert result.exit_code == 1
    assert f"no branch with code '{code}'" in result.output
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM job_outbox")).scalar() == 0


def test_rates_and_the_pipeline_workbook_from_the_command_line(app, run, company, tmp_path):
    from openpyxl import load_workbook

    from tests.factories import EventMaker, push

    rep = EventMaker("SH01-001")
    push(
        app.test_client(),
        company.agent("SH01"),
        [
            rep.make(
                "deal.opened",
                {"name": "A", "amount": 100, "currency": "USD", "stage": "quote"},
                deal="00000000-0000-0000-0000-00000000000a",
            )
        ],
    )
    missing = run("export", "pipeline", "--out", str(tmp_path / "p.xlsx"))
    assert missing.exit_code == 1 and "fx set" in missing.output
    assert run("fx", "set", "USD", "7.2", "--day", "2026-11-01").exit_code == 0
    result = run("export", "pipeline", "--unit", "EAST", "--out", str(tmp_path / "p.xlsx"))
    assert result.exit_code == 0, result.output
    assert "720.00 CNY open, 432.00 weighted" in result.output
    book = load_workbook(tmp_path / "p.xlsx")
    assert book["Deals"]["H2"].value == 100 and book["Deals"]["I2"].value == "USD"
    as_csv = run("export", "pipeline", "--unit", "EAST", "--out", str(tmp_path / "p.csv"))
    assert as_csv.exit_code == 0, as_csv.output
    lines = (tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "view,name,count,amount,weighted"
    assert "by_stage,quote,1,720.00,432.00" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["USD", "NaN"], "rate must be a number"),
        (["USD", "1e400"], "rate must be a number"),
        (["USD", "1e12"], "rate must be a number"),
        (["USD", "0.000000001"], "rate must be a number"),
        (["--", "USD", "-7"], "rate must be a number"),
        (["US1", "7"], "ISO 4217"),
        (["USD", "7", "--source", "x" * 101], "at most 100 characters"),
    ],
)
def test_a_rate_the_table_cannot_hold_is_refused_by_the_command_line(app, run, args, message):
    result = run("fx", "set", *args)

    assert result.exit_code == 1, result.output
    assert message in result.output
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM fx_rates")).scalar() == 0


def test_an_export_of_no_unit_or_to_no_folder_is_refused(app, run, company, tmp_path):
    nowhere = run("export", "pipeline", "--unit", "NOPE", "--out", str(tmp_path / "p.xlsx"))
    assert nowhere.exit_code == 1
    assert "no active org unit with code 'NOPE'" in nowhere.output
    no_folder = tmp_path / "missing" / "p.csv"
    unwritable = run("export", "pipeline", "--unit", "EAST", "--out", str(no_folder))
    assert unwritable.exit_code == 1
    assert f"cannot write {no_folder}: No such file or directory" in unwritable.output


def test_playbook_errors_are_printed_once_and_bad_versions_named(app, run, tmp_path):
    path = tmp_path / "playbook.yaml"
    path.write_text("version: 1\nname: x\nstages: 3\n")

    invalid = run("playbook", "validate", str(path))
    assert invalid.exit_code == 2
    assert invalid.output.splitlines() == [
        "error: the playbook is invalid (1 error)",
        "  line 3: stages: Not a valid list.",
    ]
    for ref, message in [("a", "'a' is neither a version number nor a file"),
                         ("99999999999", "no playbook 99999999999")]:  # fmt: skip
        result = run("playbook", "diff", ref, str(path))
        assert result.exit_code == 1 and message in result.output


def test_a_bad_setting_or_an_unreachable_database_is_named_without_a_traceback(services):
    def invoke(**env):
        base = {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
        return CliRunner(env={**base, **env}).invoke(main, ["org", "list"])

    bad = invoke(WEB_CONCURRENCY="many")
    assert bad.exit_code == 1
    assert "Error: configuration: WEB_CONCURRENCY must be an integer" in bad.output
    away = invoke(DATABASE_URL="postgresql://127.0.0.1:1/hq")
    assert away.exit_code == 1
    assert "Error: cannot use the database: connection failed" in away.output
    assert "Traceback" not in away.output
