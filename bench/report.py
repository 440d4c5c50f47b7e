"""The benchmark's outputs: a table on stdout, JSON, a Markdown summary, PNG charts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

FLOOR = "direct-aiohttp"


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _best_closed(phases: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]] | None:
    closed = [(key, figures) for key, figures in phases.items() if key.startswith("closed-")]
    if not closed:
        return None
    return max(closed, key=lambda item: item[1]["throughput_rps"])


def rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per system: serial latency, throughput at 50 clients, CPU, memory."""
    summary = results["summary"]
    floor = summary.get(FLOOR, {}).get("phases", {})
    table = [
        [
            "system",
            "serial p50 ms",
            "serial p99 ms",
            "overhead p50 ms",
            "50 clients req/s",
            "x floor",
            "best req/s",
            "CPU ms/req",
            "peak RSS MB",
        ]
    ]
    for system, data in summary.items():
        phases = data["phases"]
        serial = phases.get("serial", {})
        at50 = phases.get("closed-50", {})
        best = _best_closed(phases)
        overhead = (
            serial.get("p50_ms", math.nan) - floor["serial"]["p50_ms"]
            if "serial" in floor
            else math.nan
        )
        ratio = (
            at50.get("throughput_rps", math.nan) / floor["closed-50"]["throughput_rps"]
            if "closed-50" in floor and floor["closed-50"]["throughput_rps"]
            else math.nan
        )
        table.append(
            [
                system,
                _fmt(serial.get("p50_ms"), 2),
                _fmt(serial.get("p99_ms"), 2),
                _fmt(overhead, 2),
                _fmt(at50.get("throughput_rps"), 0),
                _fmt(ratio, 2),
                f"{_fmt(best[1]['throughput_rps'], 0)} ({best[0][7:]})" if best else "-",
                _fmt(at50.get("cpu_ms_per_request"), 2),
                _fmt(data.get("peak_rss_mb"), 0),
            ]
        )
    return table


def table(results: dict[str, Any]) -> str:
    """The main table as aligned text."""
    lines = rows(results)
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(
            cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row)
        )
        for row in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    for name, reason in results.get("skipped", {}).items():
        text.append(f"{name}: skipped: {reason}.")
    return "\n".join(text)


def markdown(results: dict[str, Any]) -> str:
    """The summary page written beside the JSON file."""
    host = results["host"]
    lines = rows(results)
    out = [
        f"# Benchmark {results['started']} ({results['plan']} run, {results['seconds']} s)",
        "",
        f"Host: {host['cpu']}, {host['cores']} cores, {host['memory_gb']} GB, "
        f"Python {host['python']}, {host['java']}, Kafka {host['kafka']}, {host['platform']}.",
        "Everything on loopback: the broker, the mock service, every system and the load "
        "generator share the machine. Medians over repeats.",
        "",
        "| " + " | ".join(lines[0]) + " |",
        "|" + "|".join("---" for _ in lines[0]) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in lines[1:]]
    for name, reason in results.get("skipped", {}).items():
        out.append(f"\n{name}: skipped: {reason}.")
    out += ["", "## Closed loop by concurrency (req/s, p50 / p99 ms)", ""]
    concurrencies = sorted(
        {
            int(key[7:])
            for data in results["summary"].values()
            for key in data["phases"]
            if key.startswith("closed-")
        }
    )
    out.append("| system | " + " | ".join(f"{c} clients" for c in concurrencies) + " |")
    out.append("|---|" + "---|" * len(concurrencies))
    for system, data in results["summary"].items():
        cells = []
        for c in concurrencies:
            f = data["phases"].get(f"closed-{c}")
            cells.append(
                f"{_fmt(f['throughput_rps'], 0)} ({_fmt(f['p50_ms'])} / {_fmt(f['p99_ms'])})"
                if f
                else "-"
            )
        out.append(f"| {system} | " + " | ".join(cells) + " |")
    out += ["", "## Open loop by offered rate (p50 / p99 ms; * saturated)", ""]
    rates = sorted(
        {
            int(key[5:])
            for data in results["summary"].values()
            for key in data["phases"]
            if key.startswith("open-")
        }
    )
    out.append("| system | " + " | ".join(f"{r}/s" for r in rates) + " |")
    out.append("|---|" + "---|" * len(rates))
    for system, data in results["summary"].items():
        cells = []
        for r in rates:
            f = data["phases"].get(f"open-{r}")
            cells.append(
                f"{_fmt(f['p50_ms'])} / {_fmt(f['p99_ms'])}{'*' if f.get('saturated') else ''}"
                if f
                else "-"
            )
        out.append(f"| {system} | " + " | ".join(cells) + " |")
    if results.get("admission"):
        out += ["", "## Admission: requests waiting at once (orchestrator)", ""]
        out += [
            "| waiting | req/s | completed | failed | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for waiting, f in results["admission"].items():
            out.append(
                f"| {waiting} | {_fmt(f['throughput_rps'], 0)} | {f['completed']}/{f['requests']} "
                f"| {f['errors']} | {_fmt(f['p50_ms'], 0)} | {_fmt(f['p99_ms'], 0)} |"
            )
    if results.get("cache"):
        out += ["", "## Step-result cache (users and stores repeat)", ""]
        out += ["| flow | req/s | p50 ms | downstream calls |", "|---|---|---|---|"]
        for name, f in results["cache"].items():
            out.append(
                f"| {name} | {_fmt(f['throughput_rps'], 0)} | {_fmt(f['p50_ms'])} "
                f"| {sum(f['downstream_calls'].values())} for {f['completed']} requests |"
            )
    if results.get("memory"):
        out += ["", "## Memory per in-flight saga (payloads of a few bytes)", ""]
        out += ["| in flight | bytes per saga | RSS before → with MB | longest GC pause ms |"]
        out += ["|---|---|---|---|"]
        for count, f in results["memory"].items():
            out.append(
                f"| {int(count):,} | {f['bytes_per_saga']:,} | {f['rss_before_mb']} → "
                f"{f['rss_with_sagas_mb']} | {f['gc_longest_pause_ms']} |"
            )
    out += [
        "",
        "Kafka client settings of the orchestrator: `"
        + str(results["kafka_client_settings"])
        + "`",
    ]
    return "\n".join(out) + "\n"


def charts(results: dict[str, Any], stem: Path) -> list[Path]:  # noqa: PLR0915
    """PNG charts: latency, throughput, CPU per request, memory per in-flight saga."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    summary = results["summary"]
    systems = list(summary)
    written: list[Path] = []

    def save(figure: Any, name: str) -> None:
        path = stem.with_name(f"{stem.name}-{name}.png")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)

    # Latency percentiles per system and load.
    loads = [
        "serial",
        *sorted(
            {k for d in summary.values() for k in d["phases"] if k.startswith("closed-")},
            key=lambda k: int(k[7:]),
        ),
    ]
    figure, axes = plt.subplots(1, len(loads), figsize=(4.2 * len(loads), 4.2), squeeze=False)
    for axis, load_key in zip(axes[0], loads, strict=True):
        p50 = [summary[s]["phases"].get(load_key, {}).get("p50_ms", math.nan) for s in systems]
        p99 = [summary[s]["phases"].get(load_key, {}).get("p99_ms", math.nan) for s in systems]
        xs = range(len(systems))
        axis.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
        axis.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
        axis.set_yscale("log")
        axis.set_xticks(list(xs), systems, rotation=60, ha="right", fontsize=7)
        axis.set_title(
            load_key.replace("closed-", "") + (" clients" if load_key != "serial" else "")
        )
        axis.set_ylabel("ms (log)")
        axis.legend(fontsize=7)
    save(figure, "latency")

    def lines(name: str, prefix: str, figure_key: str, *, title: str, x: str, y: str) -> None:
        figure, axis = plt.subplots(figsize=(8, 4.5))
        for system in systems:
            points = sorted(
                (int(key[len(prefix) :]), figures[figure_key])
                for key, figures in summary[system]["phases"].items()
                if key.startswith(prefix)
            )
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=system)
        axis.set_xscale("log")
        if prefix == "open-":
            axis.set_yscale("log")
        axis.set_xlabel(x)
        axis.set_ylabel(y)
        axis.set_title(title)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
        save(figure, name)

    lines(
        "throughput",
        "closed-",
        "throughput_rps",
        title="Closed-loop throughput",
        x="concurrent clients (log)",
        y="requests/s",
    )
    lines(
        "open-loop",
        "open-",
        "p99_ms",
        title="Open-loop p99 latency up to saturation",
        x="offered requests/s (log)",
        y="p99 ms (log)",
    )

    # CPU per request at 50 clients.
    figure, axis = plt.subplots(figsize=(8, 4.2))
    cpu = [
        summary[s]["phases"].get("closed-50", {}).get("cpu_ms_per_request", math.nan)
        for s in systems
    ]
    axis.bar(systems, cpu)
    axis.set_ylabel("CPU ms per request (50 clients)")
    axis.set_title("CPU per request of each system's own processes")
    axis.tick_params(axis="x", rotation=60, labelsize=7)
    save(figure, "cpu")

    if results.get("memory"):
        figure, axis = plt.subplots(figsize=(6, 4))
        counts = list(results["memory"])
        axis.bar(
            [f"{int(c):,}" for c in counts],
            [results["memory"][c]["bytes_per_saga"] for c in counts],
        )
        axis.axhline(2048, color="red", linestyle="--", label="target 2 KB")
        axis.set_xlabel("sagas in flight")
        axis.set_ylabel("bytes per in-flight saga")
        axis.set_title("Orchestrator memory per in-flight saga")
        axis.legend()
        save(figure, "memory")
    return written


def write(results: dict[str, Any], folder: Path) -> list[Path]:
    """Write ``<timestamp>.json``, ``<timestamp>.md`` and the charts; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(":", "").replace("+0000", "Z")
    stem = folder / f"{stamp}-{results['plan']}"
    json_path = stem.with_suffix(".json")
    json_path.write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    md_path = stem.with_suffix(".md")
    md_path.write_text(markdown(results))
    return [json_path, md_path, *charts(results, stem)]
