"""The demo generator writes the contract's files with the contract's realities, and its
counts.json describes the files exactly. Small populations keep this fast."""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kodomo_assets.demo import generate, month_range
from kodomo_assets.lib.ingest.wareki import DateParseError, parse_date

MONTHS = month_range("2022-04..2022-10")
HEADERS = {
    "jumin": "宛名番号,世帯番号,個人番号,氏名,氏名カナ,生年月日,性別,続柄,住所,町丁目コード,住民種別,住民となった年月日",
    "soudan": "受付番号,宛名番号,相談受付日,相談種別,要対協登録区分,対応状況,終結日,相談内容",
    "teate": "受給者宛名番号,対象児童宛名番号,手当種別,支給状況,認定年月日,所得額,口座番号",
    "seiho": "ケース番号,宛名番号,世帯番号,保護開始日,保護廃止日,扶助種別",
    "kaigo": "被保険者番号,宛名番号,要介護状態区分,認定有効期間開始日,認定有効期間終了日,居宅サービス利用,月間サービス利用単位数",
    "shogai": "宛名番号,手帳種別,等級,障害福祉サービス利用,障害児通所支援利用,病名",
    "boshi": "宛名番号,健診種別,受診状況,受診日,所見",
    "yobo": "宛名番号,定期接種対象数,接種済数",
    "hoiku": "宛名番号,施設名,入所状況,保育の必要性事由,入所年月日",
    "gakurei": "学籍番号,宛名番号,氏名,氏名カナ,生年月日,性別,住所,学校名,学年,就学援助区分,学校徴収金滞納,保護者氏名",
    "shukketsu": "学籍番号,対象年月,授業日数,欠席日数,遅刻回数,早退回数,保健室来室回数,いじめ被害認知,欠席理由",
}
DATE_COLUMNS = {
    "生年月日",
    "住民となった年月日",
    "相談受付日",
    "終結日",
    "認定年月日",
    "保護開始日",
    "保護廃止日",
    "認定有効期間開始日",
    "認定有効期間終了日",
    "受診日",
    "入所年月日",
}
DATE_FORMS = {
    "2022/10/11": r"\d{4}/\d{2}/\d{2}",
    "2022-10-11": r"\d{4}-\d{2}-\d{2}",
    "20221011": r"\d{8}",
    "令和4年10月11日": r"(明治|大正|昭和|平成|令和)\d{1,2}年\d{1,2}月\d{1,2}日",
    "令和元年5月1日": r"(大正|昭和|平成|令和)元年\d{1,2}月\d{1,2}日",
    "R4.10.11": r"[MTSHR][1-9]\d?\.[1-9]\d?\.[1-9]\d?",
    "R04.10.11": r"[MTSHR]\d{2}\.\d{2}\.\d{2}",
    "H28/4/1": r"[MTSHR][1-9]\d?/[1-9]\d?/[1-9]\d?",
    "5041011": r"[1-5]\d{6}",
}
MONTH_FORMS = {
    "2022-10": r"\d{4}-\d{2}",
    "2022/10": r"\d{4}/\d{2}",
    "R4.10": r"R\d{1,2}\.\d{1,2}",
    "令和4年10月": r"令和\d{1,2}年\d{1,2}月",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate(out, residents=3000, months=MONTHS, seed=7)


def _decode(path: Path) -> tuple[str, str]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp932"), "cp932"


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    text, _ = _decode(path)
    lines = [ln for ln in text.split("\r\n") if ln]
    rows = list(csv.reader(lines))
    return rows[0], rows[1:]


def _month_text(out: Path, month: str) -> str:
    return "".join(_decode(p)[0] for p in sorted((out / month).glob("*.csv")))


def test_every_month_has_the_contract_files_and_headers(demo):
    out, counts = demo
    assert sorted(p.name for p in out.iterdir()) == [*MONTHS, "_truth"]
    for month in MONTHS:
        assert sorted(p.stem for p in (out / month).iterdir()) == sorted(HEADERS)
        for name, header in HEADERS.items():
            head, _ = _rows(out / month / f"{name}.csv")
            assert head == header.split(","), name
    assert set(counts) == set(MONTHS)
    assert json.loads((out / "_truth" / "counts.json").read_text(encoding="utf-8")) == counts


def test_encodings_crlf_and_cp932_only_characters(demo):
    out, counts = demo
    for month in MONTHS:
        seen = ""
        for name in HEADERS:
            path = out / month / f"{name}.csv"
            raw = path.read_bytes()
            text, encoding = _decode(path)
            assert encoding == counts[month][name]["encoding"], name
            assert raw.count(b"\n") == raw.count(b"\r\n") > 0
            if encoding == "cp932":
                seen += text
        for ch in "髙﨑①㈱～":
            assert ch in seen, (month, ch)
        assert "\uff5e" in seen  # ～ is FULLWIDTH TILDE in CP932, never WAVE DASH
    assert {c["encoding"] for c in counts["2022-10"].values()} == {"cp932", "utf-8-sig", "utf-8"}


def test_every_date_spelling_appears_every_month(demo):
    out, _ = demo
    for month in MONTHS:
        values = set()
        for name in HEADERS:
            head, rows = _rows(out / month / f"{name}.csv")
            cols = [i for i, h in enumerate(head) if h in DATE_COLUMNS]
            values |= {r[i].strip() for r in rows for i in cols}
        for example, pattern in DATE_FORMS.items():
            assert any(re.fullmatch(pattern, v) for v in values), (month, example)
        assert any(
            re.fullmatch(r"[MTSHR]0\d\.\d{2}\.\d{2}", v) for v in values
        )  # zero-padded era year
        _, rows = _rows(out / month / "shukketsu.csv")
        months_seen = {r[1].strip() for r in rows}
        for example, pattern in MONTH_FORMS.items():
            assert any(re.fullmatch(pattern, v) for v in months_seen), (month, example)


def test_dates_use_the_right_era_and_only_injected_ones_fail(demo):
    out, counts = demo
    month = "2022-10"
    failures = 0
    for name in HEADERS:
        head, rows = _rows(out / month / f"{name}.csv")
        cols = [i for i, h in enumerate(head) if h in DATE_COLUMNS]
        for r in rows:
            for i in cols:
                try:
                    parse_date(unicodedata.normalize("NFKC", r[i]))
                except DateParseError:
                    failures += 1
    injected = sum(
        n
        for c in counts[month].values()
        for k, n in c["bad_by_reason"].items()
        if k.startswith("invalid_date")
    )
    assert failures == injected


def test_kana_variants_full_width_digits_spaces_and_quotes(demo):
    out, _ = demo
    for month in MONTHS:
        text = _month_text(out, month)
        assert re.search(r"[\uff66-\uff9f]{2,} [\uff66-\uff9f]", text), month  # ﾀｶﾊｼ ﾀﾛｳ
        assert re.search(r"[ぁ-ゖ]+\u3000[ぁ-ゖ]+", text), month
        assert re.search(r"[０-９]{3,}", text), month
        assert re.search(r"(^|,) \S|\S (,|$)", text, re.M), month
        assert re.search(r'"[^"\r\n]*,[^"\r\n]*"', text), month


def test_counts_describe_the_files_exactly(demo):
    out, counts = demo
    for month in MONTHS:
        for name, c in counts[month].items():
            raw = _decode(out / month / f"{name}.csv")[0]
            lines = raw.split("\r\n")[1:-1]  # no header, no final line end
            data = [ln for ln in lines if ln]
            assert len(data) == c["rows_written"], (month, name)
            assert len(lines) - len(data) == c["blank_lines"]
            assert all(not ln for ln in lines[len(data) :])  # blank lines only at the end
            assert len(data) - len(set(data)) == c["exact_duplicates"], (month, name)
            assert c["bad_rows"] == sum(c["bad_by_reason"].values())
            assert (
                c["expected_valid_rows"]
                == c["rows_written"] - c["exact_duplicates"] - c["bad_rows"]
            )
            if c["rows_written"] >= 200:
                assert c["bad_rows"] >= 3  # one invalid value and one conflicting pair at least


def test_conflicting_keys_are_the_injected_ones(demo):
    out, counts = demo
    for month in ("2022-04", "2022-10"):
        _, rows = _rows(out / month / "jumin.csv")
        keys = pd.Series([unicodedata.normalize("NFKC", r[0]).strip() for r in rows])
        distinct = pd.DataFrame({"key": keys, "row": [",".join(r) for r in rows]}).drop_duplicates()
        clashes = distinct["key"].duplicated(keep=False).sum()
        assert clashes == counts[month]["jumin"]["bad_by_reason"].get("conflicting_key", 0)


def _distinct_records(c: dict) -> int:
    """Rows as generated: written rows minus exact copies and the added conflicting twins."""
    return (
        c["rows_written"]
        - c["exact_duplicates"]
        - c["bad_by_reason"].get("conflicting_key", 0) // 2
    )


def test_shukketsu_has_every_pupil_for_every_month_of_the_school_year(demo):
    _, counts = demo
    for i, month in enumerate(MONTHS):  # April .. this month
        pupils = _distinct_records(counts[month]["gakurei"])
        assert _distinct_records(counts[month]["shukketsu"]) == pupils * (i + 1)


def test_blank_atena_pupils_are_linkable_or_not_registered(demo):
    out, counts = demo
    persons = pd.read_parquet(out / "_truth" / "persons.parquet")
    pupils = persons[persons["pupil_no"] != ""]
    blank = pupils[pupils["blank_atena_in_gakurei"]]
    assert 0.01 < len(blank) / len(pupils) < 0.06
    assert (~blank["resident"]).sum() >= 1 and blank["resident"].sum() >= 1
    _, rows = _rows(out / "2022-10" / "gakurei.csv")
    in_file = {r[0].strip() for r in rows if not r[1].strip()}
    assert set(blank["pupil_no"]) <= {unicodedata.normalize("NFKC", x) for x in in_file}
    assert (
        counts["2022-10"]["gakurei"]["blank_atena"]
        >= len(blank) - counts["2022-10"]["gakurei"]["bad_rows"]
    )
    _, jumin = _rows(out / "2022-10" / "jumin.csv")
    registered = {unicodedata.normalize("NFKC", r[0]).strip() for r in jumin}
    resident = blank[blank["resident"]]
    assert set(resident["atena_no"]) <= registered  # entry errors: the pupil is in 住基
    assert not (blank.loc[~blank["resident"], "atena_no"] != "").any()  # 住登外: no number at all


def test_my_numbers_carry_valid_check_digits(demo):
    out, _ = demo
    _, rows = _rows(out / "2022-10" / "jumin.csv")
    numbers = [r[2].strip() for r in rows]
    assert all(re.fullmatch(r"\d{12}", n) for n in numbers)
    for n in numbers:
        digits = [int(d) for d in n[:11]][::-1]
        total = sum(d * (i + 2 if i < 6 else i - 4) for i, d in enumerate(digits))
        check = 11 - total % 11
        assert int(n[11]) == (0 if check >= 10 else check), n


def test_population_shape_and_planted_needs(demo):
    out, _ = demo
    persons = pd.read_parquet(out / "_truth" / "persons.parquet")
    residents = persons[persons["resident"]]
    age = (pd.Timestamp("2022-10-31") - pd.to_datetime(residents["birth_date"])).dt.days / 365.25
    assert 0.12 < (age < 18).mean() < 0.17
    assert 0.22 < (age >= 65).mean() < 0.32
    assert 2800 < len(residents) < 3200
    needs = pd.read_csv(out / "_truth" / "needs.csv", dtype=str, keep_default_na=False)
    real = needs[needs["confounder"] == "0"]
    assert 0.01 < len(real) / (age < 18).sum() < 0.04
    _, soudan = _rows(out / "2022-10" / "soudan.csv")
    with_record = {unicodedata.normalize("NFKC", r[1]).strip() for r in soudan}
    known = real["known_to_center"] == "1"
    assert real.loc[known, "atena_no"].isin(with_record).all()
    assert not real.loc[~known, "atena_no"].isin(with_record).any()


def test_twins_share_household_birth_date_and_surname_not_given_name():
    from kodomo_assets.demo.places import make_places
    from kodomo_assets.demo.population import build

    rng = np.random.default_rng(3)
    pop = build(rng, make_places(rng, 30_000), 30_000, [2022 * 12 + 9])
    p = pop.p
    kids = np.flatnonzero(p["mother"] >= 0)
    df = pd.DataFrame(
        {
            "mother": p["mother"][kids],
            "birth": p["birth"][kids],
            "hh": p["hh0"][kids],
            "sur": p["sur"][kids],
            "giv": p["giv"][kids],
        }
    )
    twins = df[df.duplicated(["mother", "birth"], keep=False)]
    assert twins.groupby(["mother", "birth"]).ngroups >= 1
    per_pair = twins.groupby(["mother", "birth"]).agg(
        hh=("hh", "nunique"), sur=("sur", "nunique"), giv=("giv", "nunique"), n=("giv", "size")
    )
    assert (per_pair["hh"] == 1).all() and (per_pair["sur"] == 1).all()
    assert (per_pair["giv"] == per_pair["n"]).all()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    months = ["2022-09", "2022-10"]
    a, b, c = (tmp_path / x for x in "abc")
    generate(a, 1500, months, seed=11)
    generate(b, 1500, months, seed=11)
    generate(c, 1500, months, seed=12)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "2022-10" / "jumin.csv").read_bytes() != (c / "2022-10" / "jumin.csv").read_bytes()


def test_cli_writes_the_months_asked_for(tmp_path: Path, capsys):
    from kodomo_assets.cli import main

    assert (
        main(
            [
                "demo-data",
                "--out",
                str(tmp_path),
                "--residents",
                "600",
                "--months",
                "2022-09..2022-10",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2022-09", "2022-10", "_truth"]
    assert json.loads(capsys.readouterr().out)["months"] == ["2022-09", "2022-10"]


def test_districts_stay_unique_beyond_the_town_name_tables():
    from kodomo_assets.demo.places import make_places

    places = make_places(np.random.default_rng(0), 10_000_000)
    assert len(set(places.code)) == len(places.code) == len(set(places.town))
    assert all(code.isdigit() for code in places.code)


def _children_with_a_record(out: Path, month: str) -> float:
    persons = pd.read_parquet(out / "_truth" / "persons.parquet")
    residents = persons[persons["resident"]]
    age = (pd.Timestamp("2022-10-31") - pd.to_datetime(residents["birth_date"])).dt.days / 365.25
    children = set(residents.loc[age < 18, "atena_no"])
    _, soudan = _rows(out / month / "soudan.csv")
    with_record = {unicodedata.normalize("NFKC", r[1]).strip() for r in soudan}
    return len(children & with_record) / len(children)


def test_the_share_of_children_the_center_knows_can_be_set(tmp_path: Path) -> None:
    """--known-share: a city whose center records more (issue 15's 5%), same need."""
    default = generate(tmp_path / "a", residents=12_000, months=["2022-10"], seed=3)
    more = generate(tmp_path / "b", residents=12_000, months=["2022-10"], seed=3, known_share=0.05)
    assert 0.008 < _children_with_a_record(tmp_path / "a", "2022-10") < 0.02
    assert 0.04 < _children_with_a_record(tmp_path / "b", "2022-10") < 0.06
    needs = [pd.read_csv(tmp_path / d / "_truth" / "needs.csv", dtype=str) for d in ("a", "b")]
    assert needs[0].equals(needs[1])  # the planted needs do not move
    assert default["2022-10"]["jumin"] == more["2022-10"]["jumin"]
    with pytest.raises(ValueError, match="known_share"):
        generate(tmp_path / "c", residents=3000, months=["2022-10"], seed=3, known_share=0.7)
