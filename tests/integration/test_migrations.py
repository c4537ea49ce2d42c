"""The Alembic history has one head and builds exactly the schema the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hq_server import MIGRATIONS_DIR
from hq_server.extensions import db


def test_migrations_have_a_single_head():
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_upgrade_on_an_empty_database_matches_the_models(ctx):
    # The session fixture built the schema with `upgrade` only.
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_rollup_keys_carry_the_value_for_index_only_reads(ctx):
    with db.engine.connect() as conn:
        found = dict(
            conn.exec_driver_sql(
                "SELECT c.conrelid::regclass::text, pg_get_indexdef(c.conindid) "
                "FROM pg_constraint c WHERE c.contype = 'p' "
                "AND c.conrelid::regclass::text IN ('daily_rollups', 'unit_rollups')"
            ).all()
        )
    assert set(found) == {"daily_rollups", "unit_rollups"}
    assert all(definition.endswith("INCLUDE (value)") for definition in found.values())
