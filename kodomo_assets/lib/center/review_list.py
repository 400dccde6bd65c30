"""確認リスト: the review list's table in the center zone and its two sections, shared by the
asset that builds it (defs/center) and the exchange that exports it (lib/center/export.py)."""

TABLE = "review_list"
NEW, RISEN = "新規の示唆", "既知・スコア上昇"
