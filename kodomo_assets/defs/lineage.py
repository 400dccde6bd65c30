"""Provenance for the committee: column lineage of assets that cross a zone
(`dagster/column_lineage`, which the OSS UI stores and the report draws), and who ran a step."""

from collections.abc import Iterable, Mapping

from dagster import AssetKey, TableColumnDep, TableColumnLineage

from kodomo_assets.lib.platform.accounts import os_account


def column_lineage(deps: Mapping[str, Iterable[tuple[AssetKey, str]]]) -> TableColumnLineage:
    return TableColumnLineage(
        deps_by_column={
            column: [
                TableColumnDep(asset_key=key, column_name=name)
                for key, name in dict.fromkeys(sources)
            ]
            for column, sources in deps.items()
        }
    )


def materialized_by() -> str:
    """The OS account that ran the step: the OSS UI records no user, the committee asks who."""
    return os_account()
