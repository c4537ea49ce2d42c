"""The agent's command line: what it refuses before anything is saved."""

from __future__ import annotations

import socket
import threading

import pytest
from click.testing import CliRunner

from branch_agent.cli import main
from branch_agent.outbox import Outbox


def init(tmp_path, address: str):
    return CliRunner().invoke(
        main, ["--data-dir", str(tmp_path), "init", "--hq", address, "--token", "hqa_x"]
    )


@pytest.mark.parametrize(
    "address", ["hq.example.com", "ftp://hq.example.com", "https://", "http://hq/?x=1"]
)
def test_init_refuses_an_address_that_is_not_an_hq_url(tmp_path, address):
    result = init(tmp_path, address)

    assert result.exit_code == 2
    assert "Invalid value for '--hq'" in result.output
    assert not (tmp_path / "agent.sqlite3").exists()  # nothing saved


def test_init_warns_of_plain_http_beyond_this_machine(tmp_path):
    remote = init(tmp_path / "a", "http://127.0.0.2:9/")  # nothing listens: saved offline
    local = init(tmp_path / "b", "http://127.0.0.1:9/")

    assert "travel unencrypted" in remote.output
    assert "travel unencrypted" not in local.output
    with Outbox(tmp_path / "a") as outbox:
        assert outbox.get_meta("hq_url") == "http://127.0.0.2:9"


def test_serve_on_a_taken_port_says_so_and_starts_nothing(tmp_path):
    init(tmp_path, "http://127.0.0.1:9")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["--data-dir", str(tmp_path), "serve", "--port", str(port)]
        )

    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.output
    assert not any(t.name == "sync" for t in threading.enumerate())
    assert "no sign-in" not in result.output  # on this machine only: no warning


def test_serve_beyond_this_machine_warns_that_the_page_has_no_sign_in(tmp_path):
    init(tmp_path, "http://127.0.0.1:9")
    result = CliRunner().invoke(
        main, ["--data-dir", str(tmp_path), "serve", "--host", "192.0.2.1", "--port", "8600"]
    )  # an address of no interface here: the bind fails after the warning

    assert result.exit_code == 1
    assert "the staff page has no sign-in: anyone who can reach 192.0.2.1:8600" in result.output


def test_a_store_that_cannot_be_opened_is_named_and_left_as_it_is(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "agent.sqlite3").write_bytes(b"not a database, or a damaged one")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")

    for data_dir, message in [
        (damaged, "agent.sqlite3 is not a readable agent store"),
        (a_file, f"cannot use {a_file} as the data dir: it is a file"),
    ]:
        result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "status"])
        assert result.exit_code == 1, result.output
        assert message in result.output
    assert (damaged / "agent.sqlite3").read_bytes() == b"not a database, or a damaged one"
