"""The whole cell as separate processes over DDS on loopback: the pip launcher starts the simulated
cell, the grasp node and the supervisor, which empties a small bin; a test node listens to pick events."""

import json
import subprocess
import sys
import threading
import time

from grasp_cell.core import Outcome
from grasp_cell.msg import PickEvent
from grasp_cell.nodes.supervisor_node import EVENTS_QOS

CAUSES = {outcome.value for outcome in Outcome}


def test_cell_empties_a_small_bin_over_dds(ros_client, tmp_path):
    events = []
    ros_client.node.create_subscription(PickEvent, "pick_events", events.append, EVENTS_QOS)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ros_client.executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "grasp_cell.cli", "launch", "parts:=4", "seed:=1", "max_attempts:=15",
             f"log_dir:={tmp_path}"],
            capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        (run_dir,) = [path for path in tmp_path.iterdir() if path.is_dir()]
        records = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
        deadline = time.monotonic() + 5.0  # events still in flight when the cell exited
        while len(events) < len(records) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        spinner.join()

    summary = json.loads((run_dir / "summary.json").read_text())
    assert records, run.stdout[-3000:]

    # every attempt has exactly one cause from DESIGN.md, numbered without gaps
    assert [r["attempt"] for r in records] == list(range(1, len(records) + 1))
    assert all(isinstance(r["outcome"], str) and r["outcome"] in CAUSES for r in records)
    # parts bookkeeping chains from one attempt to the next
    assert records[0]["parts_before"] == 4
    for before, after in zip(records, records[1:]):
        assert after["parts_before"] == before["parts_after"]
    # the summary adds up
    successes = sum(r["outcome"] == "success" for r in records)
    assert summary["attempts"] == len(records)
    assert summary["successes"] == successes
    assert summary["successes"] + sum(summary["failures_by_cause"].values()) == summary["attempts"]
    assert abs(summary["success_rate"] - successes / len(records)) < 1e-9
    removed = sum(r["parts_removed"] for r in records)
    assert abs(summary["percent_cleared"] - removed / 4) < 1e-9
    assert summary["stop_reason"] in ("bin empty", "5 consecutive failures", "attempt limit (15)")
    if summary["stop_reason"] == "bin empty":
        assert records[-1]["parts_after"] == 0
    # the supervisor's report and its pick events match the log
    assert "SR" in run.stdout and "PPH" in run.stdout
    assert [e.attempt for e in events] == [r["attempt"] for r in records]
    assert [e.outcome for e in events] == [r["outcome"] for r in records]
