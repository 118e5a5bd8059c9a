"""How long a citizen's ward answer takes to read: name search over the 3,321 wards, old names, map pins.

    .venv/bin/python bench/divisions_search.py [--rounds 20]

Each round runs every case once, the kinds interleaved (a name, an old name, a pin, …), so a slow
stretch of the machine hits all of them alike. Prints p50/p99 per lookup, the first-use load times and
the memory the data adds to the process, and the load average before and after. Each lookup is timed twice:
by the wall clock (what the citizen waits) and by this thread's CPU time (the work itself), so that on a
shared, loaded machine the time spent waiting for a core shows as the gap between the two.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = ["ben thanh", "Bến Thành", "ben tahnh", "hoan kiem", "phuong tan dinh", "xa can gio", "can gioo", "ben th",
         "thu duc", "vung tau", "nha trang", "tan phu", "phu my", "da lat", "xyzzy", "Phường Văn Miếu - Quốc Tử Giám"]
OLD = ["quan 1", "Quận 1", "q1", "huyen cu chi", "phuong ben nghe", "P. Ben Nghe, Q1", "thi xa son tay", "ben nge",
       "tinh binh duong", "hang bac", "phường Quán Thánh", "tt cu chi", "phuong 1", "quan thu duc"]
PINS = [(10.7725, 106.6980), (21.0287, 105.8522), (10.7798, 106.6990), (16.0544, 108.2022), (11.9404, 108.4583),
        (10.0452, 105.7469), (20.9500, 107.0800), (12.2388, 109.1967), (8.6800, 106.6000), (22.3364, 103.8438)]


def rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--within", choices=["country", "hcm"], default="country",
                        help="search the whole country, or a deployment of Hồ Chí Minh City (province code 79)")
    args = parser.parse_args()
    before = rss_kb()
    started = time.perf_counter()
    import handlers.divisions as divisions
    imported = time.perf_counter()
    divisions.national()
    divisions.find_ward("ben thanh")
    loaded = time.perf_counter()
    divisions.wards_near(10.7725, 106.6980)
    pinned = time.perf_counter()
    within = None if args.within == "country" else ["79"]
    timings: dict[str, list[float]] = {"name": [], "old name": [], "pin": []}
    cpu: dict[str, list[float]] = {kind: [] for kind in timings}
    load_before = os.getloadavg()
    cases = [("name", q) for q in NAMES] + [("old name", q) for q in OLD] + [("pin", p) for p in PINS]
    # Interleave: one of each kind in turn.
    by_kind = {kind: [c for c in cases if c[0] == kind] for kind in timings}
    order = [by_kind[k][i] for i in range(max(map(len, by_kind.values()))) for k in timings if i < len(by_kind[k])]
    for _ in range(args.rounds):
        for kind, case in order:
            t, c = time.perf_counter(), time.thread_time()
            if kind == "pin":
                divisions.wards_near(*case, within=within)
            else:
                divisions.find_ward(case, within=within)
            cpu[kind].append((time.thread_time() - c) * 1000)
            timings[kind].append((time.perf_counter() - t) * 1000)
    load_after = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds, within={args.within}, {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"import handlers.divisions: {(imported - started) * 1000:.0f} ms; first lookup (loads names and old "
          f"names): {(loaded - imported) * 1000:.0f} ms; first pin (loads outlines): {(pinned - loaded) * 1000:.0f} ms")
    print(f"memory added (peak RSS): {(rss_kb() - before) / 1024:.1f} MB")
    for kind, values in timings.items():
        print(f"{kind:9} n={len(values):4}  wall p50 {statistics.median(values):6.2f} ms  p99 "
              f"{percentile(values, 0.99):6.2f} ms  max {max(values):6.2f} ms   CPU p50 "
              f"{statistics.median(cpu[kind]):6.2f} ms  p99 {percentile(cpu[kind], 0.99):6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
