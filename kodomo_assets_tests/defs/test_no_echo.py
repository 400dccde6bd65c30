"""Values never echo: an exception from a library that quotes a value stops at the asset
boundary; the event log holds the asset's name and the error's type only."""

import importlib
import json

import duckdb
import pytest
from dagster import DagsterInstance

from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.sources import source_assets
from kodomo_assets_tests.runs import failure_message, run

MONTH = "2022-10"
SECRET = "123456789018"


def _raise(*args, **kwargs):
    raise duckdb.ConversionException(
        f"Conversion Error: Could not convert string '{SECRET}' to INT32"
    )


@pytest.mark.parametrize(
    ("assets", "target"),
    [
        (
            [next(a for a in source_assets if a.key.path[-1] == "jumin")],
            "kodomo_assets.defs.sources.assets.ingest",
        ),
        ([pupil_links], "kodomo_assets.defs.linkage.assets.warm_up"),  # a generator asset
    ],
)
def test_a_library_error_quoting_a_value_never_reaches_the_event_log(
    storage, write_export, monkeypatch, assets, target: str
) -> None:
    from kodomo_assets_tests.conftest import JUMIN_HEADER

    write_export(
        "jumin.csv",
        [JUMIN_HEADER, "0000000001,0000000009,,山田,ヤマダ,R1.5.1,1,子,昭島市,0120,日本人,R4.1.1"],
    )
    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), name, _raise)
    instance = DagsterInstance.ephemeral()
    result = run(assets, MONTH, storage, instance)
    message = failure_message(result)
    assert "ConversionException" in message and "値を含みうる" in message
    logged = json.dumps([repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    assert SECRET not in logged and SECRET not in message
