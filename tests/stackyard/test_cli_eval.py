"""``stackyard eval`` in this process: an import becomes a revision, and what cannot run exits 2 with the reason
(the gate's 0 and 1 on real workers: tests/evaluations/test_evaluations_integration.py)."""

from __future__ import annotations

from pathlib import Path

from stackyard.cli import main
from stackyard.cli_eval import COULD_NOT_RUN, PASSED


def test_an_import_writes_a_revision_and_what_cannot_run_exits_2_saying_why(database, tmp_path: Path, capsys):
    cases = tmp_path / "cases.csv"
    cases.write_text("id,input,expected_answer\nq1,Who?,me\nq2,Why?,because\n")
    assert main(["eval", "import", str(cases), "--set", "faq"]) == PASSED
    assert main(["eval", "import", str(cases), "--set", "faq"]) == PASSED
    assert capsys.readouterr().out.splitlines() == ["test set 'faq' revision 1: 2 case(s)",
                                                    "test set 'faq' revision 2: 2 case(s)"]
    bad = tmp_path / "bad.csv"
    bad.write_text("question\nWho?\n")
    assert main(["eval", "import", str(bad), "--set", "faq"]) == COULD_NOT_RUN
    assert "no input column" in capsys.readouterr().err
    assert main(["eval", "run", "nope@1", "--set", "faq", "--gate", "--threshold", "recall=0.8"]) == COULD_NOT_RUN
    assert "nope" in capsys.readouterr().err
    assert main(["eval", "run", "nope", "--set", "faq", "--gate", "--threshold", "recall"]) == COULD_NOT_RUN
    assert "write METRIC=NUMBER" in capsys.readouterr().err
