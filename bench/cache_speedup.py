"""Full pipeline vs rules-only re-evaluation from the track cache, side by side on one clip.

Runs the site once in batch mode with an empty track cache (detector, tracker, rules,
metrics, evidence: what a threshold change costs without the cache), then a sweep of
``--points`` values of one rule threshold replayed from the cache (rules, metrics and
event scoring only). Prints both and the speed-up per sweep point.

    python bench/cache_speedup.py [--site intel_table] [--points 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import ROOT
from hydra import compose, initialize_config_dir

from vizoflow.batch import BatchRunner
from vizoflow.cli import CONF_DIR


def run(site: str, out: Path, cache: Path, overrides: list[str]) -> tuple[float, list]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"+site={site}", "mode=batch", f"output_dir={out}",
                                           f"batch.cache_dir={cache}", f"evidence.dir={out}/segments",
                                           "runtime.progress=false", "graph.preview=null",
                                           f"eval.labels={ROOT / 'data' / 'labels' / 'shared.csv'}", *overrides])
    started = time.perf_counter()
    results = BatchRunner(cfg).run()
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default="intel_table")
    parser.add_argument("--key", default="rules.unattended.seconds")
    parser.add_argument("--points", type=int, default=10)
    args = parser.parse_args()
    values = [round(2.0 + 3.0 * i, 1) for i in range(args.points)]  # 2, 5, 8, ... s
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full, results = run(args.site, tmp / "full", tmp / "cache", [])
        assert not any(r.from_cache for r in results)
        print(f"full pipeline ({args.site}, {sum(r.frames for r in results)} frames): {full:.1f} s", flush=True)
        replays = []
        for i, value in enumerate(values):
            seconds, results = run(args.site, tmp / f"point{i}", tmp / "cache", [f"{args.key}={value}"])
            assert all(r.from_cache for r in results)
            replays.append(seconds)
            print(f"  {args.key}={value:<5} from cache: {seconds:6.2f} s", flush=True)
    total = sum(replays)
    print(f"\n{args.points}-point sweep: re-running the pipeline {args.points} x {full:.1f} s = "
          f"{args.points * full:.0f} s; from the cache {total:.1f} s "
          f"(mean {total / len(replays):.2f} s per point): {args.points * full / total:.0f}x faster")


if __name__ == "__main__":
    main()
