"""確認リスト: the review list's table in the center zone and its two sections, shared by the
asset that builds it (defs/center) and the exchange that exports it (lib/center/export.py)."""

TABLE = "review_list"
NEW, RISEN = "新規の示唆", "既知・スコア上昇"
SHARE = 0.02  # the list's k as a share of all children scored (ReviewListConfig's default)


def k_for(n_children: int, share: float = SHARE, fixed: int = 0) -> int:
    """The review list's k: a fixed k, or a share of the children scored, at least 1. The
    one definition; the list records the k it used, and the report reads that."""
    return fixed or max(1, round(share * n_children))
