"""kodomo_assets: 子ども・家庭データ連携の Dagster 資産。

`dagster ... -m kodomo_assets` finds the Definitions here. (A lazy PEP 562 attribute does
not work: the `defs/` subpackage shadows a lazily bound `defs`.)
"""

import os

# Before scikit-learn loads OpenMP: idle threads sleep instead of spinning. On the 2-core
# machine shared with another process, one fit of the score's model took 294 s spinning,
# 61 s on one thread and 32 s passive (the same fit; scripts in the issue-16 note).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from kodomo_assets.definitions import defs

__all__ = ["defs"]
