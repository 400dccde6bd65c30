"""Write one dataset for every month: select the month's records, inject exact
duplicates, invalid values and conflicting duplicates, and count what a correct reader
must store and quarantine.

The injections of every month are decided first (they touch a few rows); then the records
are rendered a chunk at a time and each chunk is appended to every month's file, so memory
stays flat however large the population."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from kodomo_assets.demo.render import CHUNK, Renderer, quote
from kodomo_assets.demo.specs import Spec

BAD_SHARE = 0.0005  # invalid values, at least one from 200 rows on
CONFLICT_SHARE = 0.0002  # conflicting duplicate pairs, at least one from 200 rows on
DUPLICATE_SHARE = 0.0001  # plus one to three per file
CRLF = b"\r\n"


def _codec(encoding: str) -> str:
    return "utf-8" if encoding.startswith("utf-8") else encoding


@dataclass
class _Month:
    rows: np.ndarray  # visible frame rows, ascending
    fh: BinaryIO  # the open file
    replace: dict[int, bytes] = field(default_factory=dict)  # frame row -> line with a bad value
    after: dict[int, list[bytes]] = field(
        default_factory=dict
    )  # frame row -> lines written after it


def write_months(
    out: Path,
    spec: Spec,
    frame: pd.DataFrame,
    months: list[str],
    seed: int,
    index: int,
    addresses: np.ndarray,
    trailing: list[int],
    submit: Callable,
) -> dict[str, dict]:
    """Counts per month; `submit` runs file writes in order (in the background) while rendering goes on."""
    mf, mt = frame["_mf"].to_numpy(), frame["_mt"].to_numpy()
    vis = [
        np.flatnonzero((mf <= m) & (m < mt)).astype(np.int32) for m in range(len(months))
    ]  # compact
    r = Renderer(np.random.default_rng([seed, 500, index]), frame, vis, addresses, spec.columns)
    header = ",".join(spec.headers).encode(_codec(spec.encoding))
    if spec.encoding == "utf-8-sig":
        header = b"\xef\xbb\xbf" + header
    counts, state = {}, []
    for m, month in enumerate(months):
        path = out / month / f"{spec.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        st = _Month(vis[m], open(path, "wb"))  # noqa: SIM115 - closed by the writer thread
        c = _inject(spec, frame, r, st, np.random.default_rng([seed, 600 + index, m]), addresses)
        c["encoding"] = spec.encoding
        c["blank_lines"] = trailing[m]
        counts[month] = c
        state.append(st)
        submit(st.fh.write, header + CRLF)
    n = len(frame)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        lines = r.lines(slice(lo, hi), spec.encoding)
        for st in state:
            a, b = np.searchsorted(st.rows, [lo, hi])
            if b > a:
                submit(st.fh.write, _block(st, st.rows[a:b], lines[st.rows[a:b] - lo]))
    for st, t in zip(state, trailing, strict=True):
        submit(st.fh.write, CRLF * t)
        submit(st.fh.close)
    return counts


def _block(st: _Month, rows: np.ndarray, lines: np.ndarray) -> bytes:
    """The lines of some visible rows, with the month's bad values and extra lines applied."""
    out = lines.tolist()
    for row in [x for x in st.replace if rows[0] <= x <= rows[-1]]:
        out[int(np.searchsorted(rows, row))] = st.replace[row]
    for row in sorted((x for x in st.after if rows[0] <= x <= rows[-1]), reverse=True):
        k = int(np.searchsorted(rows, row)) + 1
        out[k:k] = st.after[row]
    out.append(b"")
    return CRLF.join(out)


def _lines(r: Renderer, rows: np.ndarray, encoding: str) -> list[bytes]:
    return r.lines(rows, encoding).tolist() if len(rows) else []


def _inject(
    spec: Spec,
    frame: pd.DataFrame,
    r: Renderer,
    st: _Month,
    rng: np.random.Generator,
    addresses: np.ndarray,
) -> dict:
    """Choose the month's bad, conflicting and duplicated rows (positions in its row list) and
    the lines they add or replace; return the month's counts."""
    rows = st.rows
    n = len(rows)
    protected = r.protected[rows]
    n_dup = 1 + int(rng.integers(0, 3)) + round(DUPLICATE_SHARE * n) if n >= 10 else 0
    big = n + n_dup >= 200  # "from 200 rows on" counts the rows as written
    n_bad = max(1, round(BAD_SHARE * n)) if big else 0
    n_conf = max(1, round(CONFLICT_SHARE * n)) if big else 0
    free = rng.permutation(np.flatnonzero(~protected))
    n_bad = min(n_bad, len(free))
    n_conf = min(n_conf, len(free) - n_bad)
    n_dup = min(n_dup, len(free) - n_bad - n_conf)
    bad = np.sort(free[:n_bad])
    conf = np.sort(free[n_bad : n_bad + n_conf])
    dup = np.sort(free[n_bad + n_conf : n_bad + n_conf + n_dup])
    codec = _codec(spec.encoding)
    by_reason: dict[str, int] = {}
    headers = spec.headers
    start = int(rng.integers(0, len(spec.bad)))
    for k, (pos, line) in enumerate(zip(bad, _lines(r, rows[bad], spec.encoding), strict=True)):
        header, reason, make = spec.bad[(start + k) % len(spec.bad)]
        rec = frame.iloc[rows[pos]].to_dict()
        fields = next(csv.reader([line.decode(codec)]))
        fields[headers.index(header)] = make(rec, rng)
        st.replace[int(rows[pos])] = ",".join(quote(f) for f in fields).encode(codec)
        key = f"{reason}:{header}"
        by_reason[key] = by_reason.get(key, 0) + 1
    extra: list[tuple[int, bytes]] = list(
        zip(dup.tolist(), _lines(r, rows[dup], spec.encoding), strict=True)
    )
    if len(conf):
        altered = pd.DataFrame([spec.alter(frame.iloc[rows[p]].to_dict(), rng) for p in conf])
        new = Renderer(rng, altered, [], addresses, spec.columns).lines(slice(None), spec.encoding)
        extra += list(zip(conf.tolist(), new, strict=True))
        by_reason["conflicting_key"] = 2 * len(conf)
    for pos, line in sorted(extra, key=lambda t: t[0]):
        st.after.setdefault(int(rows[pos]), []).append(line)
    counts: dict[str, Any] = {
        "rows_written": n + len(extra),
        "exact_duplicates": int(len(dup)),
        "bad_rows": int(len(bad) + 2 * len(conf)),
        "bad_by_reason": dict(sorted(by_reason.items())),
    }
    counts["expected_valid_rows"] = (
        counts["rows_written"] - counts["exact_duplicates"] - counts["bad_rows"]
    )
    if spec.name == "gakurei":
        valid = np.ones(n, bool)
        valid[bad] = valid[conf] = False
        counts["blank_atena"] = int((frame["atena"].to_numpy()[rows][valid] < 0).sum())
    return counts
