"""The floor for the data-movement stages: the same reads and joins as one bare DuckDB pass.

Decode every export of a month (CP932 or UTF-8, transcoded by pyarrow), load it into
DuckDB, and build one row per child aged 0–17 with a few household and per-dataset
aggregates. No typing rules, no quarantine, no Dagster: what the source assets plus the
linked table could cost at best. Prints wall seconds.

    .venv/bin/python scripts/bare_pass.py --inbox DIR --month 2022-10
"""

from __future__ import annotations

import argparse
import codecs
import time
from pathlib import Path

import duckdb
import pyarrow.csv as pv

FILES = (
    "jumin",
    "soudan",
    "teate",
    "seiho",
    "kaigo",
    "shogai",
    "boshi",
    "yobo",
    "hoiku",
    "gakurei",
    "shukketsu",
)


def encoding(path: Path) -> str:
    head = path.read_bytes()[:4096]
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:  # not final: the 4096 bytes may end inside a character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp932"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--month", default="2022-10")
    args = parser.parse_args()
    start = time.perf_counter()
    con = duckdb.connect()
    for name in FILES:
        path = args.inbox / args.month / f"{name}.csv"
        table = pv.read_csv(
            path,
            read_options=pv.ReadOptions(encoding=encoding(path)),
            convert_options=pv.ConvertOptions(column_types={}, strings_can_be_null=True),
            parse_options=pv.ParseOptions(invalid_row_handler=lambda _: "skip"),
        )
        # every column as text, as the exports are
        con.register(f"raw_{name}", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM raw_{name}")
        con.unregister(f"raw_{name}")
    loaded = time.perf_counter()
    # the contract's date forms (西暦, 和暦 in kanji or letters, GYYMMDD), in plain SQL
    eras = " ".join(
        f"WHEN '{k}' THEN {v}"
        for keys, v in (
            (("明治", "M", "1"), 1867),
            (("大正", "T", "2"), 1911),
            (("昭和", "S", "3"), 1925),
            (("平成", "H", "4"), 1988),
            (("令和", "R", "5"), 2018),
        )
        for k in keys
    )
    con.execute(f"CREATE MACRO era_base(e) AS CASE e {eras} END")
    wareki = (
        "^(明治|大正|昭和|平成|令和|[MTSHR])(元|[0-9]{1,2})[年./]([0-9]{1,2})[月./]([0-9]{1,2})"
    )

    def part(group: int) -> str:
        return f"regexp_extract(s, '{wareki}', {group})"

    con.execute(f"""CREATE MACRO wdate(s) AS CASE
        WHEN regexp_full_match(s, '[0-9]{{7}}') THEN try(make_date(era_base(s[1]) + CAST(s[2:3] AS INT),
             CAST(s[4:5] AS INT), CAST(s[6:7] AS INT)))
        WHEN regexp_full_match(s, '[0-9]{{8}}') THEN CAST(try_strptime(s, '%Y%m%d') AS DATE)
        WHEN regexp_matches(s, '^[0-9]{{4}}[/-]') THEN CAST(try_strptime(replace(s, '-', '/'), '%Y/%m/%d') AS DATE)
        ELSE try(make_date(era_base({part(1)}) + CASE {part(2)} WHEN '元' THEN 1
             ELSE TRY_CAST({part(2)} AS INT) END, TRY_CAST({part(3)} AS INT),
             TRY_CAST({part(4)} AS INT))) END""")
    con.execute("""
        CREATE TABLE children AS
        WITH j AS (SELECT CAST("宛名番号" AS VARCHAR) AS a, CAST("世帯番号" AS VARCHAR) AS h,
                          wdate(CAST("生年月日" AS VARCHAR)) AS b FROM jumin),
             kids AS (SELECT * FROM j WHERE b > DATE '2004-10-31'),
             hh AS (SELECT h, count(*) AS n FROM j GROUP BY h),
             care AS (SELECT j.h, count(*) AS n FROM kaigo k JOIN j ON CAST(k."宛名番号" AS VARCHAR) = j.a GROUP BY 1),
             att AS (SELECT CAST(g."宛名番号" AS VARCHAR) AS a, sum(TRY_CAST(s."欠席日数" AS INTEGER)) AS absent
                     FROM shukketsu s JOIN gakurei g ON CAST(s."学籍番号" AS VARCHAR) = CAST(g."学籍番号" AS VARCHAR) GROUP BY 1),
             per AS (SELECT CAST("宛名番号" AS VARCHAR) AS a, count(*) AS n FROM (
                        SELECT CAST("宛名番号" AS VARCHAR) AS "宛名番号" FROM soudan UNION ALL SELECT CAST("対象児童宛名番号" AS VARCHAR) FROM teate
                        UNION ALL SELECT CAST("宛名番号" AS VARCHAR) FROM seiho UNION ALL SELECT CAST("宛名番号" AS VARCHAR) FROM shogai
                        UNION ALL SELECT CAST("宛名番号" AS VARCHAR) FROM boshi UNION ALL SELECT CAST("宛名番号" AS VARCHAR) FROM yobo
                        UNION ALL SELECT CAST("宛名番号" AS VARCHAR) FROM hoiku) GROUP BY 1)
        SELECT k.a, hh.n AS household_size, coalesce(care.n, 0) AS care, att.absent, coalesce(per.n, 0) AS records
        FROM kids k JOIN hh USING (h) LEFT JOIN care USING (h) LEFT JOIN att USING (a) LEFT JOIN per USING (a)
    """)
    (n,) = con.execute("SELECT count(*) FROM children").fetchone()
    end = time.perf_counter()
    print(
        f"bare pass: load {loaded - start:.1f} s, children {end - loaded:.1f} s, total {end - start:.1f} s "
        f"({n} children)"
    )


if __name__ == "__main__":
    main()
