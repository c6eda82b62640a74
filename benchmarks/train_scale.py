"""Training at scale: ``provisioner train`` end to end on one process and on Dask workers.

For each ``--events`` count, generates a week of the habits workload with enough users
(``benchmarks.dataset``), writes it as a Parquet trace (not timed), then runs the command a
user runs, ``provisioner train --trace TRACE`` with ``--dask ADDRESS`` for each of
``--paths`` other than ``single``, as a child process with a home (and MLflow store) of its
own. It reads the trace, builds the dataset, trains, calibrates, evaluates, logs the run and
registers the version. A path ``ADDRESS@export`` trains from a partitioned export of the
same events instead (``events export --partitions``, written once, not timed; in
``--export-partitions`` partitions), whose partitions the Dask workers read themselves: the
driver reads none of the events. A sampler reads the resident memory of the command's process and of
every process it starts (the Dask workers) every ``--sample-s``, so a peak is the largest
sample (a spike between two samples is missed). Per path and count: wall time, the peak of
each process (``driver``: the command; ``workers``: its child processes), their sum (an upper
bound of the peaks' sum at one moment) and the job's test metrics; a run that fails keeps its
figures and exit code (-9: killed, as the kernel kills a process out of memory) and the
others go on.

Then, per path, a least-squares line of the summed peak against the events over the counts
run, and where it reaches ``--memory-gib`` (the machine's 24 GiB by default): the largest
event count the path trains on this machine, by that line (an extrapolation beyond the
largest count run; the JSON says which counts it rests on).

    .venv/bin/python benchmarks/train_scale.py [--events 1000000,3000000,10000000]
        [--paths single,local:2,local:2@export] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from benchmarks.common import emit
from benchmarks.dataset import EVENTS_PER_USER_WEEK
from features.partitioned import read_manifest, write_partitioned
from features.trace import read_parquet, write_parquet
from simulation.workloads import generate

SINGLE = "single"
FROM_EXPORT = "@export"
MIB = 1024 * 1024


@dataclass
class PeakSampler:
    """The largest resident memory seen of a process and of each of its descendants."""

    root: psutil.Process
    every_s: float
    peaks: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PeakSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
                if process.pid not in self.names:
                    self.names[process.pid] = " ".join(process.cmdline()[:4])[:120]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self.peaks[process.pid] = max(rss, self.peaks.get(process.pid, 0))

    def report(self) -> dict[str, Any]:
        """The command's peak (``driver``) and its children's, largest first (``workers``)."""
        driver = self.peaks.get(self.root.pid, 0)
        children = sorted(
            ((peak, pid) for pid, peak in self.peaks.items() if pid != self.root.pid),
            reverse=True,
        )
        return {
            "driver_peak_mb": round(driver / MIB),
            "workers": [
                {"peak_mb": round(peak / MIB), "command": self.names.get(pid, "")}
                for peak, pid in children
            ],
            "sum_of_peaks_mb": round((driver + sum(peak for peak, _ in children)) / MIB),
        }


def trace_for(events: int, hours: float, seed: int, folder: Path) -> tuple[Path, int, int]:
    """A habits trace of about ``events`` events (kept in ``folder`` and reused)."""
    users = max(1, round(events / EVENTS_PER_USER_WEEK * 168.0 / hours))
    path = folder / f"habits-{users}u-{hours:g}h-seed{seed}.parquet"
    count_file = path.with_suffix(".count")
    if not path.exists() or not count_file.exists():
        print(f"generating {users} habits users, {hours:g} h -> {path}", file=sys.stderr)
        written = write_parquet(path, generate("habits", hours=hours, seed=seed, users=users))
        count_file.write_text(str(written))
    return path, users, int(count_file.read_text())


def export_of(trace: Path, partitions: int) -> Path:
    """A partitioned export of the events of ``trace`` (kept beside it and reused)."""
    directory = trace.with_name(f"{trace.stem}-export{partitions}")
    if not directory.exists():
        print(f"exporting {trace} in {partitions} partitions -> {directory}", file=sys.stderr)
        write_partitioned(
            directory, read_parquet(trace), partitions, since=None, until=None, exported_at=0.0
        )
    read_manifest(directory)  # a complete export
    return directory


def run_path(path: str, trace: Path, home: Path, sample_s: float) -> dict[str, Any]:
    """``provisioner train --trace`` of ``trace`` (a file, or an export's directory) on
    ``path`` (single, or a Dask address, which may end in ``@export``), measured."""
    command = [sys.executable, "-m", "provisioner", "train", "--trace", str(trace)]
    if path != SINGLE:
        command += ["--dask", path.removesuffix(FROM_EXPORT)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROVISIONER_", "MLFLOW_", "REDIS_URL"))
    }
    env["PROVISIONER_HOME"] = str(home)
    print(f"running: {' '.join(command)}", file=sys.stderr)
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    sampler = PeakSampler(psutil.Process(child.pid), sample_s).start()
    out, _ = child.communicate()
    wall_s = time.perf_counter() - started
    sampler.stop()
    measured = {"path": path, "wall_s": round(wall_s, 1), **sampler.report()}
    if child.returncode != 0:
        # Kept, not raised: the runs before it stand, and -9 is what the kernel's
        # out-of-memory killer leaves.
        print(f"{' '.join(command)} exited with {child.returncode}", file=sys.stderr)
        return measured | {"exit_code": child.returncode}
    return measured | {"job": _job_figures(json.loads(out.strip().splitlines()[-1]))}


def _job_figures(trained: dict[str, Any]) -> dict[str, Any]:
    """What the command printed of the data and the model's test metrics."""
    keep = ("version", "data_digest", "rows", "positives", "trees", "stage_seconds", "seconds")
    return {k: trained[k] for k in keep} | {"test_metrics": trained["test_metrics"]["model"]}


def largest_within(points: list[tuple[int, float]], limit_mb: float) -> dict[str, Any]:
    """Where the line through ``(events, summed peak MB)`` reaches ``limit_mb``."""
    if len({events for events, _ in points}) < 2:
        return {"events": None, "why": "needs two event counts or more"}
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    intercept = mean_y - slope * mean_x
    largest = (limit_mb - intercept) / slope if slope > 0 else None
    return {
        "events": None if largest is None else int(largest),
        "mb_per_million_events": round(slope * 1e6, 1),
        "intercept_mb": round(intercept),
        "from_events": sorted(x for x, _ in points),
        "extrapolated": largest is not None and largest > max(x for x, _ in points),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000000,3000000,10000000", help="comma-separated")
    parser.add_argument(
        "--paths",
        default=f"{SINGLE},local:2",
        help=f"single or Dask addresses; an address ending in {FROM_EXPORT}: from an export",
    )
    parser.add_argument("--export-partitions", type=int, default=2, help="of the @export paths")
    parser.add_argument("--hours", type=float, default=168.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample-s", type=float, default=0.2, help="memory sampling interval")
    parser.add_argument("--memory-gib", type=float, default=24.0)
    parser.add_argument("--traces", type=Path, help="keep the traces here (reused across runs)")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    try:
        counts = [int(c) for c in args.events.split(",")]
    except ValueError:
        parser.error(f"--events must be whole numbers, comma-separated, not {args.events!r}")
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or min(counts) < 1:
        parser.error("--paths must name a path and every --events count must be 1 or more")
    if SINGLE + FROM_EXPORT in paths:
        parser.error(f"{FROM_EXPORT} is for Dask addresses: one process reads the trace")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="train-scale-") as tmp:
        traces = args.traces or Path(tmp)
        traces.mkdir(parents=True, exist_ok=True)
        for count in counts:
            trace, users, events = trace_for(count, args.hours, args.seed, traces)
            for path in paths:
                home = Path(tmp) / f"home-{events}-{len(runs)}"
                source = trace
                if path.endswith(FROM_EXPORT):
                    source = export_of(trace, args.export_partitions)
                run = run_path(path, source, home, args.sample_s)
                runs.append({"events": events, "users": users, **run})
                print(
                    f"{events} events on {path}: {run['wall_s']} s, "
                    f"driver {run['driver_peak_mb']} MB, sum {run['sum_of_peaks_mb']} MB",
                    file=sys.stderr,
                )
    limit_mb = args.memory_gib * 1024
    emit(
        {
            "benchmark": "train_scale",
            "workload": "habits",
            "hours": args.hours,
            "seed": args.seed,
            "sample_s": args.sample_s,
            "export_partitions": args.export_partitions,
            "cpus": os.cpu_count(),
            "memory_gib": args.memory_gib,
            "runs": runs,
            "largest_within_memory": {
                path: largest_within(
                    [
                        (r["events"], r["sum_of_peaks_mb"])
                        for r in runs
                        if r["path"] == path and "job" in r
                    ],
                    limit_mb,
                )
                for path in paths
            },
        },
        args.json,
    )


if __name__ == "__main__":
    main()
