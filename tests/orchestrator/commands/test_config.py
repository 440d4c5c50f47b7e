"""``orchestrator config``: values and their origin, and the README table made from the model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from orchestrator.commands.config import effective_config, markdown_table, update_readme
from orchestrator.errors import SetupError
from orchestrator.settings import CoordinatorSettings

README = Path(__file__).parents[3] / "README.md"


def test_the_readme_table_is_the_generated_one() -> None:
    readme = README.read_text()

    assert markdown_table() in readme, (
        "README.md's configuration table differs from the settings model: run "
        "`python -m orchestrator.commands.config --update README.md`"
    )
    assert update_readme(readme) == readme


def test_the_table_lists_every_setting_and_the_local_broker() -> None:
    table = markdown_table()

    for name in CoordinatorSettings.model_fields:
        assert f"| `{CoordinatorSettings.env_name(name)}` |" in table
    assert "| `ORCH_PARTITIONS` | `6` | Partitions of topics" in table
    assert "| `ORCH_CREATE_TOPICS` | `true` |" in table
    assert "| `ORCH_GROUP_INSTANCE_ID` | (none) |" in table
    assert "| `ORCH_BROKER_PORT` | `9092` |" in table


def test_update_replaces_only_the_table() -> None:
    stale = (
        "# Title\n\n| variable | default | meaning |\n|---|---|---|\n| `OLD` | 1 | x |\n\n## Next\n"
    )

    updated = update_readme(stale)

    assert updated == "# Title\n\n" + markdown_table() + "\n## Next\n"


def test_each_value_says_where_it_came_from() -> None:
    entries = {
        entry.variable: entry
        for entry in effective_config(
            {"ORCH_PARTITIONS": "12", "KAFKA_BOOTSTRAP_SERVERS": "k:1", "ORCH_HOME": "/h"}
        )
    }

    assert (entries["ORCH_PARTITIONS"].value, entries["ORCH_PARTITIONS"].origin) == (
        12,
        "ORCH_PARTITIONS",
    )
    assert entries["KAFKA_BOOTSTRAP_SERVERS"].origin == "KAFKA_BOOTSTRAP_SERVERS"
    assert (entries["ORCH_MAX_BATCH"].value, entries["ORCH_MAX_BATCH"].origin) == (500, "default")
    assert (entries["ORCH_HOME"].value, entries["ORCH_HOME"].origin) == ("/h", "ORCH_HOME")
    assert entries["ORCH_BROKER_PORT"].origin == "default"


def test_a_bad_value_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match="ORCH_PARTITIONS must be a whole number"):
        effective_config({"ORCH_PARTITIONS": "many"})


def test_the_command_prints_json_for_machines() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "orchestrator", "config", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORCH_MAX_BATCH": "7"},
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    rows = {row["variable"]: row for row in orjson.loads(completed.stdout)}
    assert rows["ORCH_MAX_BATCH"]["value"] == 7
    assert rows["ORCH_MAX_BATCH"]["from"] == "ORCH_MAX_BATCH"
    assert rows["ORCH_REQUEST_TOPIC"]["from"] == "default"
    assert rows["ORCH_REQUEST_TOPIC"]["description"]
