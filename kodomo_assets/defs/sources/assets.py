"""One software-defined asset per monthly export, generated from the dataset registry."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.lineage import materialized_by
from kodomo_assets.defs.sources.inbox import KEY as INBOX_KEY
from kodomo_assets.defs.zone import no_echo
from kodomo_assets.lib.ingest.decode import SourceFileError
from kodomo_assets.lib.ingest.delivery import code_version, read_warnings, redaction, sensitive_tag
from kodomo_assets.lib.ingest.load import SQL_TYPES, ingest
from kodomo_assets.lib.partitions import monthly
from kodomo_assets.lib.platform.keys import KeyProblem
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import Dataset, load_registry


def source_key(dataset: str) -> AssetKey:
    return AssetKey(["sources", dataset])


def column_schema(ds: Dataset) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=SQL_TYPES[c.stored_type],
                description=c.header + ("（直接識別子: 所管課内のみ）" if c.marker == "id" else ""),
            )
            for c in ds.stored_columns
        ]
        + [TableColumn(name="source_line", type="BIGINT", description="元ファイルの行番号")]
    )


def build_source_asset(ds: Dataset) -> AssetsDefinition:
    forbidden = "、".join(c.header for c in ds.columns if c.forbidden) or "なし"

    @asset(
        key=source_key(ds.name),
        group_name=f"dept_{ds.department.code}",
        owners=[ds.department.owner],
        kinds={"csv", "duckdb"},
        tags={
            "zone": "department",
            "department": ds.department.code,
            "sensitive": sensitive_tag(ds.name),
        },
        code_version=code_version(ds),
        partitions_def=monthly,
        # a tax file in the month's folder stops the whole delivery (inbox_receipt fails)
        deps=[INBOX_KEY],
        description=(
            f"{ds.label}（{ds.department.label}）: {ds.description}\n\n"
            f"受信ファイル: {ds.file}。禁止項目（読込時に除去）: {forbidden}。"
            f"保存先: {ds.department.label}の部署別ストア（基準月ごとの DuckDB）。"
        ),
        metadata={"dagster/column_schema": column_schema(ds), "file": ds.file},
    )
    @no_echo
    def _source(context: AssetExecutionContext, storage: KodomoStorage) -> MaterializeResult:
        month, dept = context.partition_key, ds.department.code
        approval_for(storage, month)  # outside every approval period nothing is read
        delivered = storage.inbox_path / month / ds.file
        if delivered.is_symlink() or delivered.exists():
            problem = storage.drop_problem(delivered, dept)
            if problem:
                raise Failure(description=f"{delivered}: {problem}", allow_retries=False)
        try:
            # a new delivery wins; otherwise a rerun reads the sealed copy of the last one
            content = None if delivered.is_file() else storage.archived_export(dept, month, ds.file)
        except KeyProblem as err:
            raise Failure(description=str(err), allow_retries=False) from None
        if content is None and not delivered.is_file():
            raise Failure(
                description=f"{delivered}: 基準月 {month} の {ds.file} ({ds.label}, "
                f"{ds.department.label}) が届いていません",
                allow_retries=False,
            )
        read = delivered.stat() if content is None else None
        readable = read is not None and bool(read.st_mode & 0o004)
        store = storage.department_store(dept, month)
        try:
            with storage.open(store, write=True) as con:
                r = ingest(ds, month, delivered, con, content, describe=storage.describe_header)
        except SourceFileError as err:
            raise Failure(description=str(err), allow_retries=False) from None
        if read is not None and not storage.archive_export(
            dept, month, delivered, read, redaction(r)
        ):
            context.log.warning(
                f"{ds.file}: 取込の間に受信箱のファイルが差し替えられました。"
                "新しいファイルは受信箱に残し、次の実行で取り込みます"
            )
        for warning in read_warnings(ds.file, r, readable):
            context.log.warning(warning)
        # Counts and schema only: the event log is visible to every UI user.
        return MaterializeResult(
            metadata={
                "dagster/row_count": r.stored_rows,
                "dagster/column_schema": column_schema(ds),
                "read_from": MetadataValue.text(
                    "受信箱" if content is None else "暗号化保管した前回の受信ファイル"
                ),
                "drop_readable_by_others": readable,
                "rows_received": r.rows_received,
                "duplicates_removed": r.duplicates_removed,
                "quarantined": r.quarantined,
                "quarantine_by_reason": MetadataValue.json(r.quarantine_by_reason),
                "blank_lines": r.blank_lines,
                "encoding": r.encoding,
                "dropped_forbidden_columns": MetadataValue.json(r.dropped_forbidden_columns),
                "ignored_unknown_columns": MetadataValue.json(r.ignored_columns),
                "store": MetadataValue.path(str(store)),
                "materialized_by": materialized_by(),
            }
        )

    return _source


source_assets = [build_source_asset(ds) for ds in load_registry().datasets.values()]
