"""The default playbook, loaded once."""

from __future__ import annotations

import pytest

from shared.playbook import Playbook, load_playbook
from tests.unit.playbook.helpers import DEFAULT_PLAYBOOK


@pytest.fixture(scope="session")
def default_playbook() -> Playbook:
    return load_playbook(DEFAULT_PLAYBOOK.read_text(encoding="utf-8"))
