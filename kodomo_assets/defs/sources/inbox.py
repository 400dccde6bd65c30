"""受信確認: what arrived in the month's inbox folder, and the refusal of tax data."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.zone import no_echo
from kodomo_assets.lib.center.feedback import FEEDBACK_FILE
from kodomo_assets.lib.ingest.decode import normalise
from kodomo_assets.lib.partitions import monthly
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import PolicyError
from kodomo_assets.lib.policy.statutory import is_tax_like
from kodomo_assets.lib.registry import load_registry

# The center's signed verification results (`kodomo feedback-import`): not a department
# export, so not in the registry; delivered only in months the center has results.
OPTIONAL_FILES = frozenset({FEEDBACK_FILE})


def inspect_inbox(storage: KodomoStorage, month: str) -> dict[str, list[str]]:
    """Expected files present (in the inbox, or sealed in a raw archive after an earlier
    ingest) or missing, optional files received, unlisted files ignored, tax-looking files
    refused."""
    folder = storage.inbox_path / month
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    datasets = load_registry().datasets.values()
    expected = {ds.file for ds in datasets}
    archived = {
        ds.file
        for ds in datasets
        if storage.raw_archive(ds.department.code, month, ds.file).exists()
    }
    known = expected | OPTIONAL_FILES
    return {
        "received": [n for n in names if n in known],
        "archived": sorted(archived - set(names)),
        "missing": sorted(expected - set(names) - archived),
        "refused_tax": [n for n in names if n not in known and is_tax_like(normalise(n))],
        "ignored": [n for n in names if n not in known and not is_tax_like(normalise(n))],
    }


KEY = AssetKey(["sources", "inbox_receipt"])
APPROVAL_CHECK = "approval_period_in_force"


def approval_check(storage: KodomoStorage, month: str) -> AssetCheckResult:
    """Both facts, as the report states them: the data month and the date of processing
    against the approval's periods."""
    try:
        approval = storage.approval()
    except (PolicyError, FileNotFoundError):
        return AssetCheckResult(
            check_name=APPROVAL_CHECK,
            passed=False,
            description="承認リストを読めません（理由は資産の失敗に示す）",
        )
    standing = approval.standing(month, storage.today())
    periods = [p.label() for p in approval.periods]
    return AssetCheckResult(
        check_name=APPROVAL_CHECK,
        passed=standing.month_covered and standing.today_covered,
        metadata={
            "data_month": month,
            "processing_date": standing.today.isoformat(),
            "data_month_in_period": standing.month_covered,
            "processing_date_in_period": standing.today_covered,
            "periods": MetadataValue.json(periods),
            "demo_approval": approval.demo,
        },
    )


@asset(
    key=KEY,
    group_name="inbox",
    owners=["team:kodomo-center"],
    kinds={"csv"},
    tags={"zone": "inbox", "sensitive": "no"},
    code_version="2",
    partitions_def=monthly,
    check_specs=[
        AssetCheckSpec(
            APPROVAL_CHECK,
            asset=KEY,
            blocking=True,
            description="承認期間が基準月と処理日の両方を含むか。含まなければ何も読まずに止め、以降の資産も"
            "実行しない（期間・根拠・処理日を示す）。",
        )
    ],
    description=(
        "受信確認: 基準月フォルダに届いたファイルの一覧。契約にないファイルは読まずに無視し、"
        "地方税情報と見られるファイル (課税・住民税・所得割・zei) は受け取りを拒否して失敗とする"
        "（地方税法第22条。承認の対象外）。取込済みのファイルは受信箱から消え、部署別ストアの"
        "暗号化保管に移っている。ファイル名と件数のみを記録する。"
    ),
)
@no_echo
def inbox_receipt(context: AssetExecutionContext, storage: KodomoStorage) -> Iterator:
    check = approval_check(storage, context.partition_key)
    if not check.passed:
        yield check  # recorded, then the refusal: nothing below has read anything
    approval_for(storage, context.partition_key)
    found = inspect_inbox(storage, context.partition_key)
    # names outside the contract may be personal data (山田花子_相談メモ.csv): a keyed tag only;
    # `kodomo inspect-inbox` shows the steward the names on their own terminal
    tags = [storage.name_tag(n) for n in found["refused_tax"]]
    if found["refused_tax"]:
        raise Failure(
            description=(
                f"{context.partition_key}: 地方税情報と見られるファイル {len(tags)} 件（識別 {', '.join(tags)}）"
                "の受け取りを拒否しました。地方税情報は地方税法第22条により本事業では利用できません"
                "（承認の対象外）。ファイルは読んでいません。`kodomo inspect-inbox --month "
                f"{context.partition_key}` で名前を確かめ、受信箱から削除してください。"
            ),
            allow_retries=False,
        )
    yield MaterializeResult(
        check_results=[check],
        metadata={
            "received": len(found["received"]),
            "already_ingested": len(found["archived"]),
            "missing": MetadataValue.json(found["missing"]),
            "ignored_unlisted": len(found["ignored"]),
            "ignored_unlisted_tags": MetadataValue.json(
                [storage.name_tag(n) for n in found["ignored"]]
            ),
        },
    )
