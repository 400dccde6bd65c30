"""kodomo_assets: 子ども・家庭データ連携の Dagster 資産。

`dagster ... -m kodomo_assets` finds the Definitions here.
"""

from kodomo_assets.definitions import defs

__all__ = ["defs"]
