"""``python -m bench.chaos``: one chaos run, progress lines, then the oracle's table.

Exit code 0 when the oracle finds nothing lost, nothing answered twice and nothing
left to undo; 1 when it does; 2 when the run itself could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.chaos.run import ChaosConfig, ChaosRun


def parse(argv: Sequence[str] | None = None) -> ChaosConfig:
    """The run's configuration from the command line."""
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="requests per second")
    parser.add_argument("--kills", type=int, default=defaults.kills, help="coordinator SIGKILLs")
    parser.add_argument("--coordinators", type=int, default=defaults.coordinators)
    parser.add_argument(
        "--duplicates", type=float, default=defaults.duplicates, help="share published twice"
    )
    parser.add_argument("--broker-restart", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--scale-out",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add one more coordinator during the run and remove it again",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a new one, printed)")
    parser.add_argument(
        "--result-timeout",
        type=float,
        default=defaults.result_timeout_s,
        help="seconds to wait for the last results",
    )
    parser.add_argument("--workdir", type=Path, help="logs and broker data (default: a temp dir)")
    arguments = parser.parse_args(argv)
    if arguments.requests < 1 or arguments.rate <= 0 or arguments.coordinators < 1:
        parser.error("--requests, --rate and --coordinators must be positive")
    return ChaosConfig(
        requests=arguments.requests,
        rate=arguments.rate,
        kills=arguments.kills,
        coordinators=arguments.coordinators,
        duplicates=arguments.duplicates,
        broker_restart=arguments.broker_restart,
        scale_out=arguments.scale_out,
        seed=arguments.seed,
        result_timeout_s=arguments.result_timeout,
        workdir=arguments.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the figures, and exit 0 only if the oracle passed."""
    logging.basicConfig(level=logging.CRITICAL)
    config = parse(argv)
    try:
        verdict, figures = asyncio.run(
            ChaosRun(config, say=lambda line: print(line, flush=True)).run()
        )
    except (RuntimeError, OSError) as error:
        print(f"error: the chaos run could not be carried out: {error}", file=sys.stderr)
        return 2
    print("\nThe run:")
    print(figures.table())
    print("\nThe oracle:")
    print(verdict.table(), flush=True)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
