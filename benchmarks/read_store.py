"""How long does reading a whole DL3 store take? gpcube vs gammapy 2.1, side by side in one run.

Reads every observation of the H.E.S.S. DL3 DR1 store: (a) event lists only, (b) events, GTI and all
four IRFs. Each tool runs ``--repeat`` times, alternating, and the table shows the median wall time
and the time per observation. Run from the repository root::

    python benchmarks/read_store.py [--data PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hess-dl3-dr1"


def gpcube_events(path: Path) -> int:
    import gpcube

    store = gpcube.DataStore.from_dir(path)
    return sum(obs.events.sizes["event"] for obs in store.observations())


def gpcube_all(path: Path) -> int:
    import gpcube

    store = gpcube.DataStore.from_dir(path)
    total = 0
    for obs in store.observations():
        obs.load()
        total += obs.events.sizes["event"]
    return total


def gammapy_events(path: Path) -> int:
    from gammapy.data import DataStore

    store = DataStore.from_dir(path)
    return sum(len(obs.events.table) for obs in store.get_observations())


def gammapy_all(path: Path) -> int:
    from gammapy.data import DataStore

    store = DataStore.from_dir(path)
    total = 0
    for obs in store.get_observations():
        total += len(obs.events.table)
        _ = obs.gti.table, obs.aeff.data, obs.edisp.data, obs.psf.data, obs.bkg.data
    return total


def _time(func, path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n_events = func(path)
    return time.perf_counter() - start, n_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    cases = {
        "events": (gpcube_events, gammapy_events),
        "events+gti+irfs": (gpcube_all, gammapy_all),
    }
    # Import both packages first so neither pays import time inside the timings.
    import gammapy.data  # noqa: F401

    import gpcube  # noqa: F401

    n_obs = len(gpcube.DataStore.from_dir(args.data))
    print(f"{n_obs} observations from {args.data}, median of {args.repeat} alternating runs\n")
    columns = (
        ("gpcube s", 10),
        ("gammapy s", 11),
        ("gpcube ms/obs", 15),
        ("gammapy ms/obs", 16),
        ("speed-up", 10),
    )
    print(f"{'what':<18}" + "".join(f"{name:>{width}}" for name, width in columns))
    for name, (ours, reference) in cases.items():
        times: dict[str, list[float]] = {"gpcube": [], "gammapy": []}
        counts = set()
        for _ in range(args.repeat):
            for label, func in (("gpcube", ours), ("gammapy", reference)):
                seconds, n_events = _time(func, args.data)
                times[label].append(seconds)
                counts.add(n_events)
        if len(counts) != 1:
            raise SystemExit(f"event counts differ between the tools: {counts}")
        a, b = statistics.median(times["gpcube"]), statistics.median(times["gammapy"])
        print(f"{name:<18}{a:>10.2f}{b:>11.2f}{1e3 * a / n_obs:>15.1f}{1e3 * b / n_obs:>16.1f}{b / a:>9.1f}x")


if __name__ == "__main__":
    main()
