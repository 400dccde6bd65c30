"""Small-cell suppression: nothing from 1 to 9 shows, and nothing hidden can be solved."""

import numpy as np

from kodomo_assets.lib.reporting.suppression import MASK, protect, recoverable, render, with_totals


def test_primary_and_secondary_suppression_in_a_district_table() -> None:
    table = with_totals([[120, 3, 40], [88, 15, 0], [60, 22, 31]])
    hidden = protect(table)
    assert hidden[0, 1]  # the 3
    assert not recoverable(table, hidden)
    shown = render(table, hidden)
    assert shown[0][1] == MASK and shown[1][2] == "0"  # zeros are not disclosive
    for (i, j), v in np.ndenumerate(table):
        if 0 < v < 10:
            assert shown[i][j] == MASK


def test_a_small_total_and_a_lone_cell_in_a_line_of_zeros() -> None:
    table = with_totals([[5, 0], [0, 0], [40, 30]])
    hidden = protect(table)
    assert hidden[0, 0] and hidden[0, 2]  # 5 and its row total 5
    assert not recoverable(table, hidden)


def test_random_tables_never_leave_a_line_with_one_hidden_cell() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        shape = tuple(rng.integers(1, 6, 2))
        table = with_totals(rng.choice([0, 1, 2, 5, 9, 10, 12, 40, 300], size=shape))
        hidden = protect(table)
        assert not recoverable(table, hidden)
        assert hidden[(table > 0) & (table < 10)].all()
