"""lib/registry.py: the dataset registry, the committed file and what parse_registry refuses.

Every refusal names the dataset (and the header) it is about, so the steward editing
data/registry/datasets.yaml knows which line to fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.registry import RegistryError, load_registry, parse_registry

COMMITTED = DATA_DIR / "registry" / "datasets.yaml"

# the smallest registry that parses: one department, one dataset keyed by an ID
MINIMAL: dict[str, Any] = {
    "departments": {"shimin": {"label": "市民課", "owner": "team:shimin"}},
    "datasets": {
        "jumin": {
            "file": "jumin.csv",
            "label": "住民基本台帳",
            "department": "shimin",
            "description": "試験用",
            "key": ["atena_no"],
            "columns": [
                {"header": "宛名番号", "name": "atena_no", "type": "id", "width": 10},
                {"header": "氏名カナ", "name": "name_kana", "type": "kana", "marker": "id"},
                {"header": "個人番号", "name": "my_number", "marker": "forbidden"},
            ],
        }
    },
}


def with_column(**column: Any) -> dict[str, Any]:
    """MINIMAL with one more column in jumin."""
    doc = copy.deepcopy(MINIMAL)
    doc["datasets"]["jumin"]["columns"].append(column)
    return doc


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(RegistryError) as err:
        parse_registry(doc)
    return str(err.value)


def test_the_committed_registry_has_the_eleven_exports() -> None:
    registry = load_registry()
    assert len(registry.datasets) == 11
    assert len({ds.file for ds in registry.datasets.values()}) == 11
    for ds in registry.datasets.values():
        assert ds.department is registry.departments[ds.department.code]
        assert ds.department.owner.startswith("team:"), ds.name
        assert all(ds.column(k).required for k in ds.key), ds.name
        assert {c.name for c in ds.columns if c.required} == set(ds.key), ds.name
        assert all(not c.forbidden for c in ds.stored_columns), ds.name
    jumin = registry.datasets["jumin"]
    assert jumin.column("my_number").forbidden
    assert "my_number" not in {c.name for c in jumin.stored_columns}


def test_a_given_file_is_read_instead_of_the_committed_one(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump(MINIMAL, allow_unicode=True), encoding="utf-8")
    registry = load_registry(path)
    assert list(registry.datasets) == ["jumin"]
    assert load_registry(COMMITTED) == load_registry()  # the default is the committed file


def test_a_minimal_registry_parses_with_its_defaults() -> None:
    ds = parse_registry(copy.deepcopy(MINIMAL)).datasets["jumin"]
    atena, kana, number = ds.columns
    assert (atena.required, atena.width, atena.type) == (True, 10, "id")
    assert not kana.required  # a blank outside the key is an unknown value
    assert number.forbidden and number.type is None
    assert [c.name for c in ds.stored_columns] == ["atena_no", "name_kana"]
    assert ds.checks == ()


def test_only_free_text_that_is_kept_is_scanned() -> None:
    doc = with_column(header="住所", name="address", type="text", marker="id")
    doc["datasets"]["jumin"]["columns"].append(
        {"header": "相談内容", "name": "notes", "type": "text", "marker": "forbidden"}
    )
    ds = parse_registry(doc).datasets["jumin"]
    scanned = {c.name for c in ds.columns if c.scanned}
    assert scanned == {"name_kana", "address"}  # not the ID, not the 禁止 text


def test_enum_values_as_a_list_or_a_mapping_are_strings() -> None:
    listed = with_column(header="住民種別", name="kind", type="enum", values=["日本人", "外国人"])
    assert parse_registry(listed).datasets["jumin"].column("kind").values == {
        "日本人": "日本人",
        "外国人": "外国人",
    }
    mapped = with_column(header="性別", name="sex", type="enum", values={1: 1, "男": 1})
    assert parse_registry(mapped).datasets["jumin"].column("sex").values == {"1": "1", "男": "1"}


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            {"header": "性別", "name": "sex", "type": "enum"},
            "datasets.jumin.性別: enum には values が必要です",
        ),
        (
            {"header": "兄弟数", "name": "siblings", "type": "int"},
            "datasets.jumin.兄弟数: 数の列には範囲 (max) が必要です",
        ),
        (
            {"header": "兄弟数", "name": "siblings", "type": "integer", "max": 9},
            "datasets.jumin.兄弟数: 不明な type 'integer'",
        ),
        (
            {"header": "続柄", "name": "relation", "type": "text", "marker": "secret"},
            "datasets.jumin.続柄: 不明な marker 'secret'",
        ),
        (
            {"header": "所得額", "name": "income", "type": "int", "max": 10**9},
            "datasets.jumin.所得額: 法令上利用できない項目は forbidden としてください",
        ),
        (
            {"header": "備考", "name": "notes", "type": "text"},
            "datasets.jumin.備考: 法令上利用できない項目は forbidden としてください",
        ),
    ],
    ids=[
        "enum_without_values",
        "int_without_max",
        "unknown_type",
        "unknown_marker",
        "income",
        "notes",
    ],
)
def test_a_malformed_column_is_refused_naming_dataset_and_header(
    column: dict[str, Any], message: str
) -> None:
    assert refused(with_column(**column)) == message


def test_a_statutorily_denied_header_passes_only_as_forbidden() -> None:
    doc = with_column(header="所得額", name="income", marker="forbidden", basis="地方税法第22条")
    income = parse_registry(doc).datasets["jumin"].column("income")
    assert income.forbidden and not income.scanned and income.basis == "地方税法第22条"


def test_duplicate_names_or_headers_are_refused() -> None:
    message = "datasets.jumin: 列名または見出しが重複しています"
    assert refused(with_column(header="別の見出し", name="atena_no", type="text")) == message
    assert refused(with_column(header="宛名番号", name="atena_no_2", type="text")) == message


def test_an_unknown_department_and_a_key_outside_the_columns_are_refused() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["datasets"]["jumin"]["department"] = "zeimu"
    assert refused(doc) == "datasets.jumin: 不明な所管課 'zeimu'"
    doc = copy.deepcopy(MINIMAL)
    doc["datasets"]["jumin"]["key"] = ["atena_no", "household_no"]
    assert refused(doc) == "datasets.jumin: key が列にありません"


def test_row_rules_are_kept_in_order() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["datasets"]["jumin"]["checks"] = [
        {"rule": "atena_no IS NOT NULL", "column": "atena_no", "reason": "一"},
        {"rule": "length(atena_no) = 10", "column": "atena_no", "reason": "二"},
    ]
    checks = parse_registry(doc).datasets["jumin"].checks
    assert [(c.rule, c.reason) for c in checks] == [
        ("atena_no IS NOT NULL", "一"),
        ("length(atena_no) = 10", "二"),
    ]
