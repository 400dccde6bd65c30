"""受信確認: what arrived in the month's inbox folder, and the refusal of tax data."""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.zone import no_echo
from kodomo_assets.lib.decode import normalise
from kodomo_assets.lib.feedback import FEEDBACK_FILE
from kodomo_assets.lib.partitions import monthly
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.statutory import is_tax_like

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
    archived = {ds.file for ds in datasets
                if storage.raw_archive(ds.department.code, month, ds.file).exists()}
    known = expected | OPTIONAL_FILES
    return {
        "received": [n for n in names if n in known],
        "archived": sorted(archived - set(names)),
        "missing": sorted(expected - set(names) - archived),
        "refused_tax": [n for n in names if n not in known and is_tax_like(normalise(n))],
        "ignored": [n for n in names if n not in known and not is_tax_like(normalise(n))],
    }


@asset(
    key=["sources", "inbox_receipt"],
    group_name="inbox",
    owners=["team:kodomo-center"],
    kinds={"csv"},
    tags={"zone": "inbox", "sensitive": "no"},
    code_version="2",
    partitions_def=monthly,
    description=(
        "受信確認: 基準月フォルダに届いたファイルの一覧。契約にないファイルは読まずに無視し、"
        "地方税情報と見られるファイル (課税・住民税・所得割・zei) は受け取りを拒否して失敗とする"
        "（地方税法第22条。承認の対象外）。取込済みのファイルは受信箱から消え、部署別ストアの"
        "暗号化保管に移っている。ファイル名と件数のみを記録する。"
    ),
)
@no_echo
def inbox_receipt(context: AssetExecutionContext, storage: KodomoStorage) -> MaterializeResult:
    approval_for(context.partition_key)  # outside every approval period nothing is read
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
    return MaterializeResult(metadata={
        "received": len(found["received"]),
        "already_ingested": len(found["archived"]),
        "missing": MetadataValue.json(found["missing"]),
        "ignored_unlisted": len(found["ignored"]),
        "ignored_unlisted_tags": MetadataValue.json([storage.name_tag(n) for n in found["ignored"]]),
    })
