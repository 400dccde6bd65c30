"""Column lineage for assets that cross a zone (`dagster/column_lineage`): the OSS UI stores
it and the committee report draws it."""

from collections.abc import Iterable

from dagster import AssetKey, TableColumnDep, TableColumnLineage


def column_lineage(deps: dict[str, Iterable[tuple[AssetKey, str]]]) -> TableColumnLineage:
    return TableColumnLineage(deps_by_column={
        column: [TableColumnDep(asset_key=key, column_name=name) for key, name in dict.fromkeys(sources)]
        for column, sources in deps.items()})
