"""``hq-server user`` commands for web sign-in: set a password, list, deactivate."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hq_server.cli import main
from tests.web.conftest import login


@pytest.fixture
def run(services):
    env = {
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "HQ_INSTANCE_DIR": str(services.instance_dir),
        "HQ_QUEUE": services.queue_name,
    }

    def invoke(*args, input=None):
        return CliRunner(env=env).invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def test_set_password_lets_the_user_sign_in_with_it(app, run, company):
    result = run("user", "set-password", "staff-user", "--password", "brand new secret")

    assert result.exit_code == 0, result.output
    assert login(app.test_client(), "staff", "brand new secret").status_code == 302
    assert login(app.test_client(), "staff").status_code == 200  # the form again


def test_set_password_prompts_and_refuses_a_short_one(app, run, company):
    short = run("user", "set-password", "staff-user", "--password", "short")
    prompted = run("user", "set-password", "staff-user", input="typed secret 1\ntyped secret 1\n")

    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert prompted.exit_code == 0
    assert login(app.test_client(), "staff", "typed secret 1").status_code == 302


def test_list_and_deactivate(app, run, company):
    listing = run("user", "list").output
    assert "region_manager-user" in listing and "EAST" in listing and "active" in listing

    result = run("user", "deactivate", "finance-user")

    assert result.exit_code == 0
    assert "finance-user" in run("user", "list").output.split("inactive")[0].splitlines()[-1]
    assert login(app.test_client(), "finance").status_code == 200  # the form again
    assert run("user", "deactivate", "nobody").exit_code == 1
