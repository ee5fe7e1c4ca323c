"""Tables whose rows differ in keys: the front of an extended study mixes trials of two
spaces, so one member has `params_optimizer.lr` and another `params_optimizer.lr#2`."""

from __future__ import annotations

from dse.output import Format, Output, Rows, Shown, markdown_table

ROWS = [
    {"number": 1, "val_accuracy": 0.9, "params_optimizer.lr": 0.001},
    {"number": 5, "val_accuracy": 0.8, "params_optimizer.lr#2": 0.01},
]


def test_a_table_has_every_rows_keys_and_leaves_missing_cells_blank(capsys):
    Output(Format.csv).show(Shown(tables=[Rows(ROWS)]))
    assert capsys.readouterr().out.splitlines() == [
        "number,val_accuracy,params_optimizer.lr,params_optimizer.lr#2",
        "1,0.9,0.001,",
        "5,0.8,,0.01",
    ]
    Output(Format.table).show(Shown(tables=[Rows(ROWS)]))
    table = capsys.readouterr().out
    assert "params_optimizer.lr#2" in table and "0.01" in table and "0.001" in table


def test_markdown_table_has_every_rows_keys():
    lines = markdown_table(ROWS).splitlines()
    assert lines[0] == "| number | val_accuracy | params_optimizer.lr | params_optimizer.lr#2 |"
    assert lines[3] == "| 5 | 0.8 |  | 0.01 |"


def test_a_float_of_3_decimals_is_shown_whole_others_to_4_digits():
    from dse.output import markdown_table

    row = {"given": 99.454, "measured": 2.62144, "big": 123456.7, "small": 1.5e-7}
    assert markdown_table([row]).splitlines()[-1] == "| 99.454 | 2.621 | 123,457 | 1.5e-07 |"
