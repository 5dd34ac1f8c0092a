"""The zoo's fixed CI sample (``zoo.QUICK``): a few models of every section end in ``exact`` (the
whole sweep is ``python tools/zoo.py``)."""

import pytest

from otograph.testing import zoo

CASES = [(title, name) for title, names in zoo.QUICK.items() for name in names]
NEEDS = {"timm": "timm", "transformers": "transformers", "yolo": "ultralytics"}


def test_every_section_has_a_sample_and_rows():
    assert set(zoo.QUICK) == set(zoo.SECTIONS)
    entries = zoo.sections()
    for title, names in zoo.QUICK.items():
        assert set(names) <= {e.name for e in entries[title]}, title
    assert len(entries["transformers"]) >= 25


@pytest.mark.parametrize("section,name", CASES)
def test_quick_sample_is_exact(section, name):
    if section in NEEDS:
        pytest.importorskip(NEEDS[section])
    entry = next(e for e in zoo.sections([section])[section] if e.name == name)
    row = zoo.run(entry, verbose=True)
    assert row.status == "exact", row
    assert row.prunable > 0 and row.removed50 > 0.2 and row.max_abs is not None, row


def test_a_failure_is_a_row_with_its_reason():
    def broken():
        raise RuntimeError("no such model")

    row = zoo.run(zoo.Entry("timm", "broken", broken))
    assert row.status == "failing" and "no such model" in row.reason
    assert "**failing**" in zoo.table([row]) and zoo.counts([row]) == {"failing": 1}
