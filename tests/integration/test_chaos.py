"""The chaos suite, short: 120 requests over 20 s through three coordinator processes,
two of them SIGKILLed and restarted, one more added and removed, the broker restarted
once (when the run starts its own), 10% of the requests published twice. Nothing may be
lost, answered twice, or left standing after its saga failed.

The long form is ``make chaos`` (``python -m bench.chaos``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos.run import ChaosConfig, ChaosRun

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


async def test_a_short_chaos_run_loses_nothing_answers_once_and_undoes_failures(
    tmp_path: Path,
) -> None:
    config = ChaosConfig(
        requests=120,
        rate=6.0,
        kills=2,
        coordinators=3,
        duplicates=0.1,
        seed=6,
        result_timeout_s=45.0,
        settle_s=3.0,
        workdir=tmp_path,
    )

    verdict, figures = await ChaosRun(config, say=print).run()

    report = f"\n{figures.table()}\n{verdict.table()}"
    print(report)
    assert figures.kills == 2, report
    assert verdict.requests == 120, report
    assert verdict.lost == (), report
    assert verdict.duplicate_result_records == 0, report
    assert verdict.compensations_due > 0, report  # the run did exercise compensation
    assert verdict.missed_compensations == (), report
    assert verdict.ok, report
