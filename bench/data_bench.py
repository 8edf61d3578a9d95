"""Benchmark of the data stages at real scale (not part of the test suite; see bench/README.md).

Generates a raw list in the VHM_VersaD schema (``id``, ``source_dataset``, bare ``image``,
``conversations``), then measures, each in its own subprocess (wall time, peak RSS):
  naive:  json.load of the whole list, a Python loop fixing paths and repeating records by the
          factors, json.dump (what the reference's data preparation amounts to);
  ours:   ``tinyrs data correct --check none`` + ``tinyrs data oversample`` (list.json + Parquet);
  reader: one process opening the manifest and reading 10,000 random records;
  exists: ``tinyrs data correct --check exists`` on a smaller list against a tree of empty files.

    .venv/bin/python bench/data_bench.py --records 1000000 --work /tmp/tinyrs-data-bench
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

SOURCES = ["crowdai", "cvact", "cvusa", "fmow-big-bbox-center", "fmow-small", "loveda", "millionAID"]
FACTORS = {"default": 1.0, "factors": {"crowdai": 2.5, "cvusa": 0.3, "loveda": 2.0}}
SEED = 7
CLASSES = ["dense residential", "farmland", "forest", "airport", "harbor", "river", "desert", "parking lot"]

# Runs a command and prints its wall time and peak RSS (its own child, so the figure is per command).
MEASURE = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:])
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"rc": code, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}))
"""

NAIVE = r"""
import json, math, random, sys
raw, out, factors, seed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
records = json.load(open(raw, encoding="utf-8"))
result = []
for record in records:
    record["image"] = record["source_dataset"] + "/" + record["image"]
    factor = factors["factors"].get(record["source_dataset"], factors["default"])
    copies = math.floor(factor) + (rng.random() < factor - math.floor(factor))
    result.extend([record] * copies)
rng.shuffle(result)
with open(out, "w", encoding="utf-8") as handle:
    json.dump(result, handle, ensure_ascii=False)
"""

READER = r"""
import json, random, resource, sys, time
from tinyrs.data.manifest import open_manifest
start = time.perf_counter()
manifest = open_manifest(sys.argv[1])
rng = random.Random(0)
picks = [rng.randrange(len(manifest)) for _ in range(int(sys.argv[2]))]
characters = sum(len(turn["value"]) for i in picks for turn in manifest[i]["conversations"])
sources = len(set(manifest.sources()))
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": len(manifest), "reads": len(picks), "sources": sources, "wall_s": wall, "peak_rss_mb": peak}))
"""


def record(index: int, rng: random.Random) -> dict:
    source = SOURCES[index % len(SOURCES)]
    label = rng.choice(CLASSES)
    turns = [
        {"from": "human", "value": "<image>\n{CLS}What is the category of this remote sensing image? "
                                   "Answer using a single word or phrase."},
        {"from": "gpt", "value": label},
        {"from": "human", "value": "Describe the image in detail, including the land use and the main objects."},
        {"from": "gpt", "value": f"The image shows a {label} area seen from above, with "
                                 f"{rng.randint(2, 60)} buildings, roads crossing from the "
                                 f"{rng.choice(['north', 'south', 'east', 'west'])} and scattered vegetation "
                                 f"covering about {rng.randint(5, 90)} percent of the scene."},
    ]
    return {"id": f"{source}_{index:08d}", "source_dataset": source, "image": f"{source}_{index:08d}.jpg",
            "conversations": turns}


def write_raw_list(path: Path, count: int) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[")
        for index in range(count):
            handle.write(("," if index else "") + "\n" + json.dumps(record(index, rng), ensure_ascii=False))
        handle.write("\n]\n")


def make_tree(root: Path, count: int) -> None:
    """The sub-folders, and ``count`` empty image files spread over them (0: folders only)."""
    for source in SOURCES:
        (root / source).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        source = SOURCES[index % len(SOURCES)]
        (root / source / f"{source}_{index:08d}.jpg").touch()


def measure(command: list[str], **kwargs) -> dict:
    wrapped = [sys.executable, "-c", MEASURE, *command]
    output = subprocess.run(wrapped, check=True, capture_output=True, text=True, **kwargs)
    result = json.loads(output.stdout.strip().splitlines()[-1])
    if result["rc"]:
        raise SystemExit(f"command failed ({result['rc']}): {' '.join(command)}")
    return result


def tinyrs(*argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from tinyrs.cli import main; sys.exit(main(sys.argv[1:]))", *argv]


def run_ours(work: Path, raw: Path, root: Path, check: str, tag: str) -> dict:
    corrected, final = work / f"{tag}-corrected", work / f"{tag}-final"
    correct = measure(tinyrs("data", "correct", "--list", str(raw), "--image-root", str(root), "--check", check,
                             "--out-dir", str(corrected)))
    oversample = measure(tinyrs("data", "oversample", "--in-dir", str(corrected), "--factors", json.dumps(FACTORS),
                                "--seed", str(SEED), "--out-dir", str(final)))
    return {"correct": correct, "oversample": oversample,
            "wall_s": correct["wall_s"] + oversample["wall_s"],
            "cpu_s": correct["cpu_s"] + oversample["cpu_s"],
            "peak_rss_mb": max(correct["peak_rss_mb"], oversample["peak_rss_mb"]),
            "records_after": json.loads((final / "report.json").read_text())["records_after"],
            "manifest": str(final / "manifest.parquet")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--exists-records", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tinyrs-data-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"records": args.records, "factors": FACTORS, "seed": SEED, "cpus": os.cpu_count(),
                     "load_before": os.getloadavg()}

    raw, root = args.work / "raw.json", args.work / "images"
    start = time.perf_counter()
    write_raw_list(raw, args.records)
    make_tree(root, 0)
    results["raw_list_mb"] = raw.stat().st_size / 2**20
    print(f"generated {args.records} records ({results['raw_list_mb']:.0f} MiB) in {time.perf_counter() - start:.0f} s")

    results["naive"] = measure([sys.executable, "-c", NAIVE, str(raw), str(args.work / "naive.json"),
                                json.dumps(FACTORS), str(SEED)])
    print("naive", results["naive"])
    results["ours"] = run_ours(args.work, raw, root, "none", "ours")
    print("ours", results["ours"])
    results["reader"] = json.loads(subprocess.run(
        [sys.executable, "-c", READER, results["ours"]["manifest"], str(args.reads)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    print("reader", results["reader"])

    small_raw, small_root = args.work / "raw-exists.json", args.work / "images-exists"
    write_raw_list(small_raw, args.exists_records)
    make_tree(small_root, args.exists_records)
    results["exists"] = measure(tinyrs("data", "correct", "--list", str(small_raw), "--image-root", str(small_root),
                                       "--check", "exists", "--out-dir", str(args.work / "exists-corrected")))
    results["exists"]["records"] = args.exists_records
    print("exists", results["exists"])

    results["load_after"] = os.getloadavg()
    results["speedup_wall"] = results["naive"]["wall_s"] / results["ours"]["wall_s"]
    results["speedup_cpu"] = results["naive"]["cpu_s"] / results["ours"]["cpu_s"]
    results["rss_ratio"] = results["naive"]["peak_rss_mb"] / results["ours"]["peak_rss_mb"]
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({key: results[key] for key in ("speedup_wall", "speedup_cpu", "rss_ratio")}))


if __name__ == "__main__":
    main()
