"""Turn a dataset's typed records into encoded CSV lines, with the format realities of the
contract: mixed date spellings, half-width or hiragana kana, full-width digits, stray
spaces and quoted commas.

Choices are drawn once per record (so a record that stays the same keeps its spelling
from month to month) and every reality is forced onto at least one visible row per month
(so each month shows it whatever the sample size). Strings are made for a chunk of rows
at a time (writer.py streams them), which keeps memory flat for multi-million-row registers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kodomo_assets.demo import dates as D
from kodomo_assets.demo import names as N
from kodomo_assets.demo.population import GIVEN_KANA, GIVEN_KANJI, SUR_KANA, SUR_KANJI

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
CHUNK = 100_000
_NUM = np.array([str(i) for i in range(100_000)], dtype=object)


@dataclass
class Col:
    header: str
    kind: str  # id, date, month, code, int, name, kana, addr, text
    src: str | tuple[str, str]  # record column(s)
    width: int = 0  # id: zero-padded width
    table: tuple[str, ...] = ()  # code/text: spellings by integer code
    forms: dict[int, float] = field(default_factory=dict)  # date: form -> weight
    fw: float = 0.0  # share with full-width digits
    space: float = 0.0  # share with stray spaces
    half: float = 0.0  # kana: half-width share
    hira: float = 0.0  # kana: hiragana share


def _kana_tables() -> list[tuple[np.ndarray, np.ndarray, str]]:
    out = [(SUR_KANA, GIVEN_KANA, "\u3000")]
    for conv, sep in ((N.to_half_width, " "), (N.to_hiragana, "\u3000")):
        out.append(
            (
                np.array([conv(s) for s in SUR_KANA], dtype=object),
                np.array([conv(s) for s in GIVEN_KANA], dtype=object),
                sep,
            )
        )
    return out


_KANA = _kana_tables()


@dataclass
class _Plan:
    style: np.ndarray | None = None  # date/month form, or kana variant
    fw: np.ndarray | None = None  # full-width digits
    space: np.ndarray | None = None  # -1 none, 0 before, 1 after, 2 both

    def styles(self, rows: slice | np.ndarray) -> np.ndarray:
        """The style of some rows, for a kind that has one (date, month, kana)."""
        if self.style is None:
            raise ValueError("this column's plan has no style")
        return self.style[rows]


class Renderer:
    """Renders the records of one dataset; `vis` holds, per month, the visible row indices."""

    def __init__(
        self,
        rng: np.random.Generator,
        frame: pd.DataFrame,
        vis: list[np.ndarray],
        addresses: np.ndarray,
        columns: list[Col],
    ):
        self.rng, self.frame, self.vis, self.addresses = rng, frame, vis, addresses
        self.columns = columns
        self.protected = np.zeros(len(frame), bool)
        self.plans = [self._plan(c) for c in columns]

    def lines(self, rows: slice | np.ndarray, encoding: str) -> np.ndarray:
        """Encoded lines of some rows (at most a CHUNK or so: the caller streams). Every
        string is a function of its row alone, so any subset renders as in the whole."""
        fields = [self._strings(c, p, rows) for c, p in zip(self.columns, self.plans, strict=True)]
        return encode_lines([",".join(r) for r in zip(*fields, strict=True)], encoding)

    # -- choices -------------------------------------------------------------------------
    def _pick(self, share: float, eligible: np.ndarray) -> np.ndarray:
        """A random share of eligible rows, plus the first eligible visible row of each month."""
        mask = (self.rng.random(len(eligible)) < share) & eligible
        for rows in self.vis:
            cand = rows[eligible[rows]]
            if len(cand) and not mask[cand].any():
                mask[cand[0]] = self.protected[cand[0]] = True
        return mask

    def _plan(self, col: Col) -> _Plan:
        f, n = self.frame, len(self.frame)
        plan = _Plan()
        filled = np.ones(n, bool)
        if col.kind in ("id", "date", "code", "text"):
            filled = (
                f[col.src].to_numpy() >= 0
                if col.kind != "date"
                else f[col.src].to_numpy() != D.NONE
            )
        if col.kind == "date":
            plan.style = self._date_forms(f[col.src].to_numpy(), col.forms)
        elif col.kind == "month":
            plan.style = self.rng.integers(0, 4, n).astype("int8")
            for rows in self.vis:  # all four spellings every month
                plan.style[rows[:4]] = np.arange(len(rows[:4]))
                self.protected[rows[:4]] = True
        elif col.kind == "kana":
            plan.style = np.zeros(n, "int8")
            plan.style[self._pick(col.half, filled)] = 1
            hira = self._pick(col.hira, plan.style == 0)
            plan.style[hira] = 2
        if col.fw:
            plan.fw = self._pick(col.fw, filled)
        if col.space:
            plan.space = np.where(
                self._pick(col.space, filled), self.rng.integers(0, 3, n), -1
            ).astype("int8")
        return plan

    def _date_forms(self, days: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        keys = np.array(list(weights), dtype="int8")
        p = np.array(list(weights.values()), dtype=float)
        forms = keys[self.rng.choice(len(keys), len(days), p=p / p.sum())]
        dated = days != D.NONE
        gannen = D.is_reiwa_gannen(days) & dated
        for rows in self.vis:
            cand = rows[dated[rows]][: len(keys)]
            forms[cand] = keys[: len(cand)]
            self.protected[cand] = True
            g = rows[gannen[rows]][:1]  # 令和元年… needs a 2019-05..12 date in kanji
            if D.KANJI in weights and len(g):
                forms[g] = D.KANJI
                self.protected[g] = True
        return forms

    # -- strings -------------------------------------------------------------------------
    def _strings(self, col: Col, plan: _Plan, rows: slice | np.ndarray) -> np.ndarray:
        f, k = self.frame, col.kind
        if k == "kana" and isinstance(col.src, str):  # whole spellings (the 学齢簿's own)
            out = _spelled(f[col.src].to_numpy()[rows], plan.styles(rows))
        elif k in ("name", "kana"):
            sur, giv = (f[c].to_numpy()[rows] for c in col.src)
            out = self._names(sur, giv, k, None if plan.style is None else plan.style[rows])
        else:
            out = self._values(f[col.src].to_numpy()[rows], col, plan, rows)
        if plan.fw is not None:
            sel = np.flatnonzero(plan.fw[rows])
            out[sel] = [v.translate(FULL_WIDTH) for v in out[sel]]
        if plan.space is not None:
            side = plan.space[rows]
            sel = np.flatnonzero(side >= 0)
            out[sel] = [
                (" " if s != 1 else "") + v + (" " if s != 0 else "")
                for v, s in zip(out[sel], side[sel].tolist(), strict=True)
            ]
        if k in ("addr", "text"):
            sel = np.flatnonzero(pd.Series(out).str.contains(r'[,"]', regex=True).to_numpy())
            out[sel] = [quote(v) for v in out[sel]]
        return out

    def _values(self, v: np.ndarray, col: Col, plan: _Plan, rows: slice | np.ndarray) -> np.ndarray:
        k = col.kind
        if k == "id":
            return _digits(v, col.width)
        if k == "int":
            return _digits(v, 0)
        if k in ("code", "text"):
            table = np.array(col.table + ("",), dtype=object)
            return table[np.where(v < 0, len(col.table), v % len(col.table) if k == "text" else v)]
        if k == "addr":  # a household, or the address as spelt (the 学齢簿's own)
            return v.copy() if v.dtype == object else self.addresses[v]
        if k == "month":
            style = plan.styles(rows)
            spelt = {
                (am, s): D.render_month(int(am), int(s)) for am in np.unique(v) for s in range(4)
            }
            return np.array(
                [spelt[(a, s)] for a, s in zip(v.tolist(), style.tolist(), strict=True)],
                dtype=object,
            )
        if k == "date":
            return D.render_days(v, plan.styles(rows))
        raise ValueError(k)

    @staticmethod
    def _names(
        sur: np.ndarray, giv: np.ndarray, kind: str, variant: np.ndarray | None
    ) -> np.ndarray:
        if kind == "name":
            return SUR_KANJI[sur] + "\u3000" + GIVEN_KANJI[giv]
        out = np.empty(len(sur), dtype=object)
        for k, (s_tab, g_tab, sep) in enumerate(_KANA):
            sel = variant == k
            out[sel] = s_tab[sur[sel]] + sep + g_tab[giv[sel]]
        return out


def _spelled(kana: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Katakana names (full-width space between the parts) in the style of _KANA."""
    conv = (lambda s: s, N.to_half_width, N.to_hiragana)
    return np.array(
        [conv[k](s) for s, k in zip(kana.tolist(), style.tolist(), strict=True)], dtype=object
    )


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    v = np.asarray(v, dtype="int64")
    if width == 0 and len(v) and v.min() >= 0 and v.max() < len(_NUM):
        return _NUM[v]
    return np.array([f"{x:0{width}d}" if x >= 0 else "" for x in v.tolist()], dtype=object)


def quote(value: str) -> str:
    if "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def encode_lines(lines: list[str], encoding: str) -> np.ndarray:
    """Encode all lines in one codec call, then split. LF never occurs inside a CP932 or
    UTF-8 multibyte character, and no field holds a line break, so splitting is safe."""
    out = np.empty(len(lines), dtype=object)
    if lines:
        codec = "utf-8" if encoding.startswith("utf-8") else encoding
        out[:] = "\n".join(lines).encode(codec).split(b"\n")
    return out
