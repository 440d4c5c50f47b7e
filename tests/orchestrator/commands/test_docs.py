"""``orchestrator docs``: the AsyncAPI document printed, or written as YAML or JSON."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from orchestrator.cli import main

DEMO_FLOWS = Path(__file__).parents[3] / "handlers" / "demo" / "flows"


def test_prints_yaml_with_the_effective_topic_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_REQUEST_TOPIC", "shop.requests")

    assert main(["docs", str(DEMO_FLOWS)]) == 0

    document = yaml.safe_load(capsys.readouterr().out)
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["requests"]["address"] == "shop.requests"
    assert "ReserveRequest" not in document["components"]["schemas"]


def test_writes_json_when_the_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asyncapi.json"

    status = main(
        [
            "docs",
            str(DEMO_FLOWS),
            "--adapter",
            "handlers.demo.inventory:inventory",
            "--out",
            str(out),
        ]
    )

    assert status == 0
    assert capsys.readouterr().out == ""
    document = orjson.loads(out.read_bytes())
    assert "ReserveRequest" in document["components"]["schemas"]


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.json"

    assert main(["docs", str(DEMO_FLOWS), "--format", "yaml", "--out", str(out)]) == 0

    assert out.read_text().startswith("asyncapi: 3.0.0\n")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--adapter", "handlers.demo.inventory:nothing"], "has no attribute 'nothing'"),
        (["--adapter", "orchestrator.testing:__name__"], "not a handlers.Service"),
        (["--out", "/nonexistent/dir/asyncapi.yaml"], "Cannot write /nonexistent/dir"),
    ],
)
def test_mistakes_are_one_sentence(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["docs", str(DEMO_FLOWS), *arguments]) == 1

    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert message in error
    assert "Traceback" not in error


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["docs", "--help"])

    assert "orchestrator docs handlers/demo/flows --out asyncapi.yaml" in capsys.readouterr().out
