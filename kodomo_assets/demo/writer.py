"""Write one dataset for every month: select the month's records, inject exact
duplicates, invalid values and conflicting duplicates, and count what a correct reader
must store and quarantine."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from kodomo_assets.demo.render import Renderer, quote
from kodomo_assets.demo.specs import Spec

BAD_SHARE = 0.0005  # invalid values, at least one from 200 rows on
CONFLICT_SHARE = 0.0002  # conflicting duplicate pairs, at least one from 200 rows on
DUPLICATE_SHARE = 0.0001  # plus one to three per file


def _codec(encoding: str) -> str:
    return "utf-8" if encoding.startswith("utf-8") else encoding


def render(spec: Spec, frame: pd.DataFrame, rng: np.random.Generator, vis: list[np.ndarray],
           addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(encoded lines, rows protected because they carry a forced format reality)."""
    r = Renderer(rng, frame, vis, addresses, spec.columns)
    return r.lines(spec.encoding), r.protected


def write_months(out: Path, spec: Spec, frame: pd.DataFrame, months: list[str], seed: int, index: int,
                 addresses: np.ndarray, trailing: list[int], submit: Callable) -> dict[str, dict]:
    """Counts per month; `submit` writes the files (in the background) while rendering goes on."""
    mf, mt = frame["_mf"].to_numpy(), frame["_mt"].to_numpy()
    vis = [np.flatnonzero((mf <= m) & (m < mt)) for m in range(len(months))]
    lines, protected = render(spec, frame, np.random.default_rng([seed, 500, index]), vis, addresses)
    codec = _codec(spec.encoding)
    header = ",".join(spec.headers).encode(codec)
    if spec.encoding == "utf-8-sig":
        header = b"\xef\xbb\xbf" + header
    counts = {}
    for m, month in enumerate(months):
        rng = np.random.default_rng([seed, 600 + index, m])
        rows = vis[m]
        body, c = _month_lines(spec, frame, rows, lines[rows], protected[rows], rng, addresses)
        path = out / month / f"{spec.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        submit(write_file, path, [header, *body], b"\r\n" * trailing[m])
        c["encoding"] = spec.encoding
        c["blank_lines"] = trailing[m]
        counts[month] = c
    return counts


def write_file(path: Path, lines: list[bytes], tail: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(b"\r\n".join(lines))
        fh.write(b"\r\n" + tail)


def _month_lines(spec: Spec, frame: pd.DataFrame, rows: np.ndarray, lines: np.ndarray,
                 protected: np.ndarray, rng: np.random.Generator,
                 addresses: np.ndarray) -> tuple[list[bytes], dict]:
    n = len(rows)
    n_dup = 1 + int(rng.integers(0, 3)) + round(DUPLICATE_SHARE * n) if n >= 10 else 0
    big = n + n_dup >= 200  # "from 200 rows on" counts the rows as written
    n_bad = max(1, round(BAD_SHARE * n)) if big else 0
    n_conf = max(1, round(CONFLICT_SHARE * n)) if big else 0
    free = rng.permutation(np.flatnonzero(~protected))
    n_bad = min(n_bad, len(free))
    n_conf = min(n_conf, len(free) - n_bad)
    n_dup = min(n_dup, len(free) - n_bad - n_conf)
    bad = np.sort(free[:n_bad])
    conf = np.sort(free[n_bad:n_bad + n_conf])
    dup = np.sort(free[n_bad + n_conf:n_bad + n_conf + n_dup])
    codec = _codec(spec.encoding)
    body = lines.copy()
    by_reason: dict[str, int] = {}
    headers = spec.headers
    start = int(rng.integers(0, len(spec.bad)))
    for k, pos in enumerate(bad):
        header, reason, make = spec.bad[(start + k) % len(spec.bad)]
        rec = frame.iloc[rows[pos]].to_dict()
        fields = next(csv.reader([body[pos].decode(codec)]))
        fields[headers.index(header)] = make(rec, rng)
        body[pos] = ",".join(quote(f) for f in fields).encode(codec)
        key = f"{reason}:{header}"
        by_reason[key] = by_reason.get(key, 0) + 1
    extra: list[tuple[int, bytes]] = [(int(p), lines[p]) for p in dup]
    if len(conf):
        altered = pd.DataFrame([spec.alter(frame.iloc[rows[p]].to_dict(), rng) for p in conf])
        new, _ = render(spec, altered, rng, [], addresses)
        extra += [(int(p), line) for p, line in zip(conf, new, strict=True)]
        by_reason["conflicting_key"] = 2 * len(conf)
    extra.sort(key=lambda t: t[0])
    values = np.empty(len(extra), dtype=object)
    values[:] = [e[1] for e in extra]
    body = np.insert(body, np.array([e[0] + 1 for e in extra], dtype="int64"), values)
    counts = {
        "rows_written": int(len(body)), "exact_duplicates": int(len(dup)),
        "bad_rows": int(len(bad) + 2 * len(conf)), "bad_by_reason": dict(sorted(by_reason.items())),
    }
    counts["expected_valid_rows"] = counts["rows_written"] - counts["exact_duplicates"] - counts["bad_rows"]
    if spec.name == "gakurei":
        valid = np.ones(n, bool)
        valid[bad] = valid[conf] = False
        counts["blank_atena"] = int((frame["atena"].to_numpy()[rows][valid] < 0).sum())
    return body.tolist(), counts

