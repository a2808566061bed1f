"""How fast the clip library answers the panel's searches with a big library (default 10,000 clips).

Rows are made from the built-in presets (prompt, tags, tempo range) with varied seeds, models,
dates and keep flags, then typical searches are timed, with the full-text index and with the LIKE
fallback. Recording real clips (WAV + sidecar, two commits) and a full `check` are timed too.

    python bench/library_search.py [--clips 10000] [--real-clips 300] [--repeat 30]

Runs in a temporary folder; prints absolute times (median and 95th percentile).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS = ["facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-stereo-small", "tiny"]


def seed_rows(library, count: int, rng: np.random.Generator) -> None:
    """Insert `count` ready rows in one transaction (files are not needed to time searches)."""
    from bridge.library import schema
    from bridge.presets import load_presets

    presets = load_presets().presets
    start = time.time() - 365 * 24 * 3600
    rows = []
    for index in range(count):
        preset = presets[rng.integers(len(presets))]
        low, high = preset.bpm_range or (90, 120)
        created = start + index * (365 * 24 * 3600 / count)
        rows.append((
            uuid.uuid4().hex, "ready", created, f"/bench/clips/{index:06d}.wav", "",
            f"{preset.prompt}, variation {rng.integers(1000)}", MODELS[rng.integers(len(MODELS))],
            int(rng.integers(2**31)), json.dumps(preset.request_fields()), float(rng.integers(low, high + 1)),
            preset.signature, preset.bars, "A minor", 8.0, 32000, 1, created, int(rng.integers(6)),
            int(rng.random() < 0.1), " ".join(preset.tags),
        ))
    with schema.transaction(library._connection) as connection:
        connection.executemany(
            """INSERT INTO clips (uid, status, status_changed_at, path, name, prompt, model, seed, params, bpm,
               signature, bars, musical_key, duration_seconds, sample_rate, channels, created_at, rating, kept,
               tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            rows,
        )


def timed(function, repeat: int) -> tuple[float, float, object]:
    """Median and 95th percentile in milliseconds, and the last result."""
    samples, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10000)
    parser.add_argument("--real-clips", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        for name in ("CONFIG", "DATA", "CACHE", "OUTPUT"):
            os.environ[f"SEGUE_{name}_DIR"] = str(Path(folder) / name.lower())
        from bridge.library import ClipInfo, ClipLibrary, ClipQuery
        from bridge.library.integrity import check_library

        rng = np.random.default_rng(0)
        library = ClipLibrary()
        began = time.perf_counter()
        seed_rows(library, args.clips, rng)
        print(f"library: {args.clips} clips seeded in {time.perf_counter() - began:.2f} s; "
              f"SQLite {__import__('sqlite3').sqlite_version}, FTS5 {'on' if library.full_text else 'off'}")

        queries = {
            "newest 200 (panel opens)": ClipQuery(),
            "text 'drums' (common)": ClipQuery(text="drums"),
            "text 'bodhran' (rare)": ClipQuery(text="bodhran"),
            "prefixes 'synthw arp'": ClipQuery(text="synthw arp"),
            "model filter": ClipQuery(model="facebook/musicgen-medium"),
            "bpm 118-126": ClipQuery(bpm_min=118, bpm_max=126),
            "kept only": ClipQuery(kept_only=True),
            "text+model+bpm+kept": ClipQuery(text="groove", model="facebook/musicgen-small", bpm_min=90,
                                             bpm_max=130, kept_only=True),
            "tag 'drums'": ClipQuery(tag="drums"),
            "page 20 of 'drums'": ClipQuery(text="drums", offset=4000),
        }
        for full_text in ([True, False] if library.full_text else [False]):
            library.full_text = full_text
            print(f"\nsearch ({'FTS5' if full_text else 'LIKE fallback'}), {args.repeat} runs each:")
            print(f"  {'query':28} {'median':>9} {'p95':>9} {'hits':>6} {'total':>6}")
            for label, query in queries.items():
                median, p95, hits = timed(lambda query=query: library.search(query), args.repeat)
                total = library.count(query)
                print(f"  {label:28} {median:7.2f}ms {p95:7.2f}ms {len(hits):>6} {total:>6}")
        library.full_text = True

        audio = (rng.standard_normal((32000 * 8, 1)) * 0.1).astype(np.float32)
        began = time.perf_counter()
        for index in range(args.real_clips):
            library.record(audio, 32000, ClipInfo(prompt=f"bench take {index}", model="tiny", seed=index))
        per_clip = (time.perf_counter() - began) * 1000 / max(args.real_clips, 1)
        print(f"\nrecord: {per_clip:.1f} ms per 8 s mono clip (key estimate, WAV + sidecar, fsync, two commits)")

        library._connection.execute("DELETE FROM clips WHERE path LIKE '/bench/%'")
        began = time.perf_counter()
        report = check_library(library, repair=False)
        print(f"check: {(time.perf_counter() - began) * 1000:.0f} ms for {report.clips_checked} clips with files "
              f"({'clean' if report.clean else 'NOT clean'})")
        library.close()


if __name__ == "__main__":
    main()
