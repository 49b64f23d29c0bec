"""Throughput of the whole ROS cell: runs the launched cell (real nodes over DDS) on seeded bins and
prints attempts and picks per wall-hour and median phase times, from each run's summary.

    python -m grasp_cell.eval.cell_rate --seeds 0 1 2 [name:=value ...]

The standing target is >= 1 000 attempts per wall-hour on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
from pathlib import Path

from grasp_cell.core.pick import PHASES
from grasp_cell.eval.attempt_log import SUMMARY_FILE
from grasp_cell.graph import parse_key_values
from grasp_cell.launcher import launch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments, e.g. parts:=30")
    options = parser.parse_args(argv)
    overrides = parse_key_values(options.arguments)

    summaries = []
    with tempfile.TemporaryDirectory(prefix="grasp_cell_rate_") as log_dir:
        for seed in options.seeds:
            output = io.StringIO()
            code = launch({**overrides, "seed": str(seed), "log_dir": log_dir}, out=output)
            if code != 0:
                print(output.getvalue()[-3000:])
                raise SystemExit(f"the cell exited with code {code} on seed {seed}")
            (run_dir,) = [path for path in Path(log_dir).iterdir() if f"seed{seed}" in path.name]
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
            summaries.append(summary)
            print(f"seed {seed}: {summary['attempts']} attempts in {summary['cell_time']:.1f} s, "
                  f"SR {100 * summary['success_rate']:.1f} %, PC {100 * (summary['percent_cleared'] or 0.0):.1f} %, "
                  f"{summary['attempts_per_hour']:.0f} attempts/h", flush=True)

    attempts = sum(s["attempts"] for s in summaries)
    successes = sum(s["successes"] for s in summaries)
    removed, at_start = sum(s["parts_removed"] for s in summaries), sum(s["parts_at_start"] for s in summaries)
    print(f"all {len(summaries)} bins: SR {100 * successes / max(attempts, 1):.1f} % ({successes}/{attempts}), "
          f"PC {100 * removed / max(at_start, 1):.1f} % ({removed}/{at_start})")
    print(f"median over {len(summaries)} bins:")
    print(f"  attempts per wall-hour {statistics.median(s['attempts_per_hour'] for s in summaries):8.0f}")
    print(f"  picks per wall-hour    {statistics.median(s['picks_per_hour'] for s in summaries):8.0f}")
    for phase in ("capture", "plan", *PHASES):
        values = [s["phase_medians"][phase] for s in summaries if phase in s["phase_medians"]]
        if values:
            print(f"  {phase:<8} {1000 * statistics.median(values):6.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
