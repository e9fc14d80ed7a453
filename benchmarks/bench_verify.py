"""Per-check time table of ``febm-ref verify``: cold (empty Numba cache) and warm runs.

Usage (from the repository root; the table in benchmarks/verify_times.md was made by it)::

    python3 benchmarks/bench_verify.py                      # full table + --jobs headline + quick
    python3 benchmarks/bench_verify.py --runs cold1 warm1   # only the serial cold/warm table
    python3 benchmarks/bench_verify.py --only samplers      # a subset (passed to --only)

Every run is a separate ``python3 -m febm_ref.cli verify --json`` process with
``NUMBA_CACHE_DIR`` pointing at a fresh temporary directory (cold: nothing compiled yet) that
the next run reuses (warm: every kernel loads from that cache). The runs:

* ``cold1``/``warm1``: full mode, ``--jobs 1`` -- the per-check table. A check's compile
  time is estimated as its cold CPU seconds minus its warm CPU seconds (the warm run still
  loads cached machine code, a few ms per kernel);
* ``coldN``: full mode, ``--jobs`` = the usable cores, fresh cache -- the headline wall time;
* ``quickN``: ``--quick``, ``--jobs`` = the usable cores, fresh cache.

Wall seconds are only meaningful on an otherwise idle machine; CPU seconds (user + sys of
the child process and its workers, ``resource.getrusage(RUSAGE_CHILDREN)``; per check
``time.process_time`` in the process that ran it) are much less sensitive to load. The
negative controls' rejection margins (error / tolerance: a z-score over its bound, or a KS
statistic over its critical value) are listed so that a speed change that loses power shows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"cold1": (False, 1, True), "warm1": (False, 1, False),
        "coldN": (False, None, True), "quickN": (True, None, True)}
"""name -> (quick, jobs (None: usable cores), fresh cache)."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_verify(quick: bool, jobs: int, cache_dir: str, json_path: Path, only) -> dict:
    """One ``verify`` process; returns its JSON report plus wall and CPU seconds."""
    command = [sys.executable, "-m", "febm_ref.cli", "verify", "--jobs", str(jobs), "--json", str(json_path)]
    command += ["--quick"] if quick else []
    command += ["--only", *only] if only else []
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    status = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(json_path.read_text())
    report.update(exit_status=status, wall=wall, user=after.ru_utime - before.ru_utime,
                  sys=after.ru_stime - before.ru_stime,
                  command=" ".join(shlex.quote(c) for c in command[1:]))
    return report


def by_name(report):
    return {r["name"]: r for r in report["results"]} if report else {}


def check_table(cold: dict, warm: dict) -> list:
    """Markdown rows: one per check, longest cold first."""
    c, w = by_name(cold), by_name(warm)
    rows = ["| check | cold s | cold CPU s | warm s | warm CPU s | compile CPU s (cold - warm) |",
            "|---|---:|---:|---:|---:|---:|"]
    total = [0.0, 0.0, 0.0, 0.0]
    for name in sorted(c, key=lambda n: -c[n]["seconds"]):
        cc = c[name]
        ww = w.get(name, {})
        vals = [cc["seconds"], cc.get("cpu_seconds", float("nan")), ww.get("seconds", float("nan")),
                ww.get("cpu_seconds", float("nan"))]
        total = [t + v for t, v in zip(total, vals)]
        rows.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {vals[1] - vals[3]:.2f} |")
    rows.append("| **sum** | " + " | ".join(f"**{v:.1f}**" for v in total) + f" | **{total[1] - total[3]:.1f}** |")
    return rows


def negative_control_rows(reports: dict) -> list:
    rows = ["| run | negative control | error | tolerance | error / tolerance | rejected |",
            "|---|---|---:|---:|---:|---|"]
    for run, report in reports.items():
        for r in report["results"]:
            if r.get("negative_control"):
                ratio = r["error"] / r["tolerance"] if r["tolerance"] else float("inf")
                rows.append(f"| {run} | {r['name']} | {r['error']:.4g} | {r['tolerance']:.4g} | {ratio:.3g} | "
                            f"{'yes' if r['passed'] else 'NO'} |")
    return rows


def identical_rows(reports: dict) -> list:
    """Whether every number of every check (all but its timings) is the same in each run of
    the same mode: the ``--jobs`` run must reproduce the serial one bit for bit."""
    def numbers(report):
        return {r["name"]: {k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")}
                for r in report["results"]}

    rows = []
    for base, other in (("cold1", "warm1"), ("cold1", "coldN")):
        if base in reports and other in reports:
            a, b = numbers(reports[base]), numbers(reports[other])
            differ = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
            rows.append(f"- {other} vs {base}: " + ("every check's numbers identical" if not differ
                                                    else f"DIFFERENT in {len(differ)}: {', '.join(differ)}"))
    return rows


def summary_rows(reports: dict) -> list:
    rows = ["| run | command | wall s | user + sys CPU s | checks | failed |", "|---|---|---:|---:|---:|---:|"]
    for run, r in reports.items():
        rows.append(f"| {run} | `{r['command']}` | {r['wall']:.1f} | {r['user'] + r['sys']:.1f} | "
                    f"{r['n_checks']} | {r['n_failed']} |")
    return rows


BEGIN, END = "<!-- bench_verify.py: begin -->", "<!-- bench_verify.py: end -->"


def write_between_markers(path: Path, generated: str) -> None:
    """Replace the text between :data:`BEGIN` and :data:`END` in ``path`` (the hand-written
    analysis around it is kept); a new file gets a title and the markers."""
    text = path.read_text() if path.exists() else f"# `febm-ref verify` times\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{generated.strip()}\n{END}{tail}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--jobs", type=int, default=usable_cores(), help="N of coldN and quickN")
    parser.add_argument("--only", nargs="+", default=None, help="passed to verify --only")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "verify_times.md"))
    parser.add_argument("--json-dir", default=None, help="keep the verify JSON reports here")
    args = parser.parse_args(argv)
    json_dir = Path(args.json_dir or tempfile.mkdtemp(prefix="bench_verify_"))
    json_dir.mkdir(parents=True, exist_ok=True)
    reports, cache = {}, None
    with tempfile.TemporaryDirectory(prefix="numba_cold_") as scratch:
        for run in args.runs:
            quick, jobs, fresh = RUNS[run]
            if fresh or cache is None:
                cache = tempfile.mkdtemp(dir=scratch)
            reports[run] = run_verify(quick, jobs or args.jobs, cache, json_dir / f"{run}.json", args.only)
            r = reports[run]
            print(f"{run}: wall {r['wall']:.1f} s, CPU {r['user'] + r['sys']:.1f} s, "
                  f"{r['n_checks']} checks, {r['n_failed']} failed", file=sys.stderr)
    lines = ["# `febm-ref verify` times", "",
             f"Produced by `python3 benchmarks/bench_verify.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
             f" on {usable_cores()} usable cores ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
             "see the script's docstring for what each run is. JSON reports: "
             f"`{json_dir}`.", "", "## Runs", "", *summary_rows(reports), "", *identical_rows(reports), ""]
    if "cold1" in reports:
        lines += ["## Per check (full mode, --jobs 1)", "", *check_table(reports["cold1"], reports.get("warm1")), ""]
    lines += ["## Negative controls", "", *negative_control_rows(reports), ""]
    write_between_markers(Path(args.out), "\n".join(lines[2:]))
    print(f"wrote {args.out}", file=sys.stderr)
    same = all("DIFFERENT" not in row for row in identical_rows(reports))
    return 0 if same and all(r["n_failed"] == 0 and r["exit_status"] == 0 for r in reports.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
