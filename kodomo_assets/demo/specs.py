"""How each export is spelled: headers in the contract's order, encoding, date spellings,
which columns carry which format realities, which invalid values can be injected, and
how a conflicting duplicate of a record differs from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kodomo_assets.demo import codes as C
from kodomo_assets.demo import dates as D
from kodomo_assets.demo.places import Places
from kodomo_assets.demo.render import Col

# CP932 with CRLF unless listed. 健康課's newer system writes UTF-8 with BOM; the school
# cloud service (校務支援) writes UTF-8 without BOM. CRLF everywhere.
ENCODINGS = {"boshi": "utf-8-sig", "yobo": "utf-8-sig", "shukketsu": "utf-8"}
DEFAULT_ENCODING = "cp932"

Record = dict
Maker = Callable[[Record, np.random.Generator], str]


@dataclass
class Spec:
    name: str
    columns: list[Col]
    bad: list[tuple[str, str, Maker]]  # (header, reason, invalid value)
    alter: Callable[[Record, np.random.Generator], Record]  # same key, different content

    @property
    def encoding(self) -> str:
        return ENCODINGS.get(self.name, DEFAULT_ENCODING)

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


def _bad_id(col: str, width: int) -> Maker:
    def make(rec: Record, rng: np.random.Generator) -> str:
        s = f"{int(rec[col]):0{width}d}"
        i = int(rng.integers(width // 2, width))
        return s[:i] + "ABX"[int(rng.integers(0, 3))] + s[i + 1 :]

    return make


def _bad_date(rec: Record, rng: np.random.Generator) -> str:
    return D.BAD_DATES[int(rng.integers(0, len(D.BAD_DATES)))]


def _bad_month(rec: Record, rng: np.random.Generator) -> str:
    return D.BAD_MONTHS[int(rng.integers(0, len(D.BAD_MONTHS)))]


def _bad_count(rec: Record, rng: np.random.Generator) -> str:
    return ("3日", "x", "２回", "約5", "1.5")[int(rng.integers(0, 5))]


def _const(value: str) -> Maker:
    return lambda rec, rng: value


def _more_than(total: str) -> Maker:
    return lambda rec, rng: str(int(rec[total]) + int(rng.integers(1, 4)))


def _other(value: int, n: int, rng: np.random.Generator, lo: int = 0) -> int:
    return lo + (value - lo + int(rng.integers(1, n - lo))) % (n - lo)


def _changed(rec: Record, **kw) -> Record:
    out = dict(rec)
    out.update(kw)
    return out


def _grade_mismatch(rec: Record, rng: np.random.Generator) -> str:
    return "2級" if int(rec["kind"]) == 1 else "2度"


def build_specs(places: Places) -> dict[str, Spec]:
    jumin_forms = {
        D.CODE7: 0.5,
        D.SLASH: 0.2,
        D.KANJI: 0.15,
        D.LETTER0: 0.08,
        D.HYPHEN: 0.05,
        D.COMPACT: 0.02,
    }
    diag = tuple(d for group in C.DIAGNOSES for d in group)
    notes = tuple(n for group in C.ABSENCE_NOTES for n in group)
    specs = [
        Spec(
            "jumin",
            [
                Col("宛名番号", "id", "atena", 10, space=0.002, fw=0.002),
                Col("世帯番号", "id", "hh_no", 10),
                Col("個人番号", "id", "mynumber", 12),
                Col("氏名", "name", ("sur", "giv"), space=0.003),
                Col("氏名カナ", "kana", ("sur", "giv"), half=0.04, hira=0.02),
                Col("生年月日", "date", "birth", forms=jumin_forms),
                Col("性別", "code", "sex", table=C.SEX_DIGIT),
                Col("続柄", "code", "rel", table=C.REL),
                Col("住所", "addr", "hh", space=0.002),
                Col("町丁目コード", "code", "district", table=tuple(places.code)),
                Col("住民種別", "code", "foreign", table=C.RESIDENT_KIND),
                Col("住民となった年月日", "date", "registered", forms=jumin_forms),
            ],
            [
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
                ("生年月日", "invalid_date", _bad_date),
                ("続柄", "invalid_code", _const("不明")),
                ("性別", "invalid_code", _const("3")),
                ("住民となった年月日", "invalid_date", _bad_date),
            ],
            lambda r, g: _changed(r, rel=_other(int(r["rel"]), len(C.REL), g)),
        ),
        Spec(
            "soudan",
            [
                Col("受付番号", "id", "number", 10),
                Col("宛名番号", "id", "atena", 10, fw=0.02),
                Col(
                    "相談受付日",
                    "date",
                    "received",
                    forms={D.SLASH: 0.6, D.KANJI: 0.35, D.HYPHEN: 0.05},
                ),
                Col("相談種別", "code", "kind", table=C.CONSULT),
                Col("要対協登録区分", "code", "council", table=C.COUNCIL, space=0.01),
                Col("対応状況", "code", "status", table=C.CASE_STATUS),
                Col("終結日", "date", "closed", forms={D.SLASH: 0.6, D.KANJI: 0.4}),
                Col("相談内容", "text", "note", table=C.CONSULT_NOTES),
            ],
            [
                ("相談受付日", "invalid_date", _bad_date),
                ("相談種別", "invalid_code", _const("一般相談")),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
            ],
            lambda r, g: _changed(r, kind=_other(int(r["kind"]), len(C.CONSULT), g)),
        ),
        Spec(
            "teate",
            [
                Col("受給者宛名番号", "id", "recipient", 10, fw=0.01),
                Col("対象児童宛名番号", "id", "child", 10, fw=0.01, space=0.002),
                Col("手当種別", "code", "kind", table=C.ALLOWANCE),
                Col("支給状況", "code", "status", table=C.PAYMENT, space=0.002),
                Col(
                    "認定年月日",
                    "date",
                    "granted",
                    forms={D.LETTER: 0.45, D.LETTER0: 0.3, D.COMPACT: 0.2, D.SLASH: 0.05},
                ),
                Col("所得額", "int", "income", fw=0.01),
                Col("口座番号", "id", "account", 7),
            ],
            [
                ("手当種別", "invalid_code", _const("児童手当X")),
                ("支給状況", "invalid_code", _const("保留")),
                ("認定年月日", "invalid_date", _bad_date),
                ("対象児童宛名番号", "invalid_id", _bad_id("child", 10)),
            ],
            lambda r, g: _changed(r, status=_other(int(r["status"]), len(C.PAYMENT), g)),
        ),
        Spec(
            "seiho",
            [
                Col("ケース番号", "id", "case", 6),
                Col("宛名番号", "id", "atena", 10, fw=0.02),
                Col("世帯番号", "id", "hh_no", 10),
                Col(
                    "保護開始日",
                    "date",
                    "start",
                    forms={D.KANJI: 0.55, D.LETTER_SLASH: 0.4, D.SLASH: 0.05},
                ),
                Col("保護廃止日", "date", "end", forms={D.KANJI: 0.55, D.LETTER_SLASH: 0.45}),
                Col("扶助種別", "code", "aid", table=C.AID_LISTS, space=0.01),
            ],
            [
                ("保護開始日", "invalid_date", _bad_date),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
                ("扶助種別", "invalid_code", _const("生活扶助;住宅手当")),
            ],
            lambda r, g: _changed(r, start=int(r["start"]) - 31),
        ),
        Spec(
            "kaigo",
            [
                Col("被保険者番号", "id", "insured", 10),
                Col("宛名番号", "id", "atena", 10, fw=0.01),
                Col("要介護状態区分", "code", "level", table=C.CARE_LEVEL, space=0.003),
                Col(
                    "認定有効期間開始日",
                    "date",
                    "valid_from",
                    forms={D.COMPACT: 0.65, D.HYPHEN: 0.3, D.CODE7: 0.05},
                ),
                Col(
                    "認定有効期間終了日",
                    "date",
                    "valid_to",
                    forms={D.COMPACT: 0.65, D.HYPHEN: 0.3, D.CODE7: 0.05},
                ),
                Col("居宅サービス利用", "code", "service", table=C.YES_NO),
                Col("月間サービス利用単位数", "int", "units", fw=0.02),
            ],
            [
                ("要介護状態区分", "invalid_code", _const("要介護6")),
                ("要介護状態区分", "invalid_code", _const("要介護０")),
                ("月間サービス利用単位数", "invalid_count", _bad_count),
                ("認定有効期間終了日", "invalid_date", _bad_date),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
            ],
            lambda r, g: _changed(r, level=_other(int(r["level"]), len(C.CARE_LEVEL), g, lo=1)),
        ),
        Spec(
            "shogai",
            [
                Col("宛名番号", "id", "atena", 10, space=0.003),
                Col("手帳種別", "code", "kind", table=C.CARD),
                Col("等級", "code", "grade", table=C.CARD_GRADE),
                Col("障害福祉サービス利用", "code", "welfare", table=C.YES_NO),
                Col("障害児通所支援利用", "code", "child_svc", table=C.YES_NO),
                Col("病名", "text", "diag", table=diag),
            ],
            [
                ("手帳種別", "invalid_code", _const("障害者手帳")),
                ("等級", "grade_kind_mismatch", _grade_mismatch),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
            ],
            lambda r, g: _changed(r, welfare=1 - int(r["welfare"])),
        ),
        Spec(
            "boshi",
            [
                Col("宛名番号", "id", "atena", 10, fw=0.03),
                Col("健診種別", "code", "checkup", table=C.CHECKUP),
                Col("受診状況", "code", "status", table=C.CHECKUP_STATUS, space=0.003),
                Col("受診日", "date", "day", forms={D.HYPHEN: 0.8, D.KANJI: 0.15, D.SLASH: 0.05}),
                Col("所見", "text", "findings", table=C.FINDINGS),
            ],
            [
                ("受診日", "invalid_date", _bad_date),
                ("受診状況", "invalid_code", _const("不明")),
                ("健診種別", "invalid_code", _const("2歳児健診")),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
            ],
            lambda r, g: _changed(r, status=1 if int(r["status"]) != 1 else 0),
        ),
        Spec(
            "yobo",
            [
                Col("宛名番号", "id", "atena", 10, fw=0.03, space=0.003),
                Col("定期接種対象数", "int", "due", fw=0.02),
                Col("接種済数", "int", "given", fw=0.02),
            ],
            [
                ("接種済数", "count_exceeds_total", _more_than("due")),
                ("定期接種対象数", "invalid_count", _bad_count),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
            ],
            lambda r, g: (
                _changed(r, given=int(r["given"]) - 1)
                if int(r["given"]) > 0
                else _changed(r, due=int(r["due"]) + 1)
            ),
        ),
        Spec(
            "hoiku",
            [
                Col("宛名番号", "id", "atena", 10),
                Col("施設名", "code", "facility", table=tuple(places.facilities)),
                Col("入所状況", "code", "status", table=C.NURSERY_STATUS, space=0.005),
                Col("保育の必要性事由", "code", "reason", table=C.NURSERY_REASON),
                Col(
                    "入所年月日",
                    "date",
                    "enrolled",
                    forms={D.LETTER0: 0.5, D.CODE7: 0.45, D.LETTER_SLASH: 0.05},
                ),
            ],
            [
                ("入所状況", "invalid_code", _const("入所予定")),
                ("入所状況", "invalid_code", _const("入所保留")),
                ("入所年月日", "invalid_date", _bad_date),
                ("宛名番号", "invalid_id", _bad_id("atena", 10)),
            ],
            lambda r, g: _changed(r, reason=_other(int(r["reason"]), len(C.NURSERY_REASON), g)),
        ),
        Spec(
            "gakurei",
            [
                Col("学籍番号", "id", "number", 8, fw=0.01),
                Col("宛名番号", "id", "atena", 10, fw=0.01),
                Col("氏名", "name", ("sur", "giv")),
                Col("氏名カナ", "kana", "kana", half=0.15, hira=0.05),
                Col(
                    "生年月日", "date", "birth", forms={D.KANJI: 0.65, D.SLASH: 0.3, D.LETTER: 0.05}
                ),
                Col("性別", "code", "sex", table=C.SEX_KANJI),
                Col("住所", "addr", "addr", fw=0.2, space=0.01),
                Col("学校名", "code", "school", table=tuple(places.school_names)),
                Col("学年", "code", "grade", table=C.SCHOOL_GRADE),
                Col("就学援助区分", "code", "aid", table=C.SCHOOL_AID),
                Col("学校徴収金滞納", "code", "arrears", table=C.YES_NO),
                Col("保護者氏名", "name", ("g_sur", "g_giv")),
            ],
            [
                ("生年月日", "invalid_date", _bad_date),
                ("学年", "invalid_code", _const("小7")),
                ("学籍番号", "invalid_id", _bad_id("number", 8)),
                ("性別", "invalid_code", _const("不明")),
            ],
            lambda r, g: _changed(r, arrears=1 - int(r["arrears"])),
        ),
        Spec(
            "shukketsu",
            [
                Col("学籍番号", "id", "number", 8),
                Col("対象年月", "month", "month"),
                Col("授業日数", "int", "days"),
                Col("欠席日数", "int", "absent", fw=0.02, space=0.003),
                Col("遅刻回数", "int", "late", fw=0.01),
                Col("早退回数", "int", "early"),
                Col("保健室来室回数", "int", "nurse"),
                Col("いじめ被害認知", "code", "bullied", table=C.YES_NO),
                Col("欠席理由", "text", "note", table=notes),
            ],
            [
                ("欠席日数", "count_exceeds_total", _more_than("days")),
                ("欠席日数", "invalid_count", _bad_count),
                ("対象年月", "invalid_month", _bad_month),
                ("授業日数", "invalid_count", _const("二十")),
            ],
            lambda r, g: _changed(r, late=int(r["late"]) + 1),
        ),
    ]
    return {s.name: s for s in specs}
