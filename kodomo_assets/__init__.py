"""kodomo_assets: 子ども・家庭データ連携の Dagster 資産。

`dagster ... -m kodomo_assets` finds the Definitions here. (A lazy PEP 562 attribute does
not work: the `defs/` subpackage shadows a lazily bound `defs`.)
"""

from kodomo_assets.definitions import defs

__all__ = ["defs"]
