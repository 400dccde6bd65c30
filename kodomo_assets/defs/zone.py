"""What every asset beyond the department stores shares: the center as owner, a group and
tag per zone, monthly partitions, and the zone gate's three blocking checks."""

import functools
import inspect
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetKey,
    DagsterError,
    Failure,
    MetadataValue,
    asset,
)

from kodomo_assets.lib.partitions import monthly
from kodomo_assets.lib.platform.storage import KodomoStorage, keep_only
from kodomo_assets.lib.policy.gate import CHECKS, GateReport

OWNER = "team:kodomo-center"


def gate_checks(key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name, asset=key, blocking=True, description=text)
        for name, text in CHECKS.items()
    ]


def check_results(reports: list[GateReport]) -> list[AssetCheckResult]:
    """One result per gate check, over every table the asset publishes."""
    out = []
    for name in CHECKS:
        outcomes = [o for r in reports for o in r.outcomes if o.name == name]
        out.append(
            AssetCheckResult(
                check_name=name,
                passed=all(o.passed for o in outcomes),
                metadata={
                    "problems": MetadataValue.json([p for o in outcomes for p in o.problems]),
                    "tables": MetadataValue.json([r.table for r in reports]),
                },
            )
        )
    return out


def publish_gated(
    storage: KodomoStorage,
    con: duckdb.DuckDBPyConnection,
    stage: Path,
    final: Path,
    report: GateReport,
    tables: list[str],
) -> Generator[AssetCheckResult, None, list]:
    """Promote the staged file only when the gate passed; otherwise yield the failed checks
    and raise, so a leaking table is never written. `results = yield from publish_gated(...)`."""
    results = check_results([report])
    if not report.passed:
        yield from results
        raise Failure(description=report.message(), allow_retries=False)
    keep_only(con, tables)
    storage.promote(con, stage, final)
    return results


def _quiet(name: str, err: Exception) -> Failure:
    return Failure(
        description=(
            f"{name}: 処理が {type(err).__name__} で止まりました。ライブラリ（DuckDB・pyarrow・Splink・Great "
            "Expectations など）の原文は値を含みうるため記録しません。ファイル・行・列の分かる誤りは"
            "それぞれの資産が名前を挙げて報告します。"
        ),
        allow_retries=False,
    )


def no_echo(fn: Callable) -> Callable:
    """The asset boundary: an exception that is not ours (a DuckDB conversion error quotes the
    value it failed on) becomes a message that names the asset and the error's type only,
    before anything reaches Dagster's event log, metadata or compute log."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (Failure, DagsterError):
                raise
            except Exception as err:
                raise _quiet(fn.__name__, err) from None

        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Failure, DagsterError):
            raise
        except Exception as err:
            raise _quiet(fn.__name__, err) from None

    return plain


def zone_asset(
    key: AssetKey,
    *,
    zone: str,
    sensitive: bool,
    kinds: set[str],
    code_version: str,
    deps: Sequence[AssetKey | AssetDep],
    description: str,
    gated: bool = True,
    checks: Sequence[tuple[str, str]] = (),
    group: str | None = None,
):
    """The @asset decorator for a zone's monthly asset; `gated` adds the gate's blocking
    checks, `checks` more blocking checks of its own (name, description)."""
    specs = (gate_checks(key) if gated else []) + [
        AssetCheckSpec(name, asset=key, blocking=True, description=text) for name, text in checks
    ]
    decorate = asset(
        key=key,
        group_name=group or zone,
        owners=[OWNER],
        kinds=kinds,
        tags={"zone": zone, "sensitive": "yes" if sensitive else "no"},
        code_version=code_version,
        partitions_def=monthly,
        deps=list(deps),
        check_specs=specs or None,
        description=description,
    )
    return lambda fn: decorate(no_echo(fn))
