"""The benchmarks' paired significance test, against intervals computed by hand."""

import pytest

from benchmarks.paired import paired_difference


def test_a_consistent_gain_is_significant():
    # differences 1, 2, 0, 2, 2 points: mean 1.4, sample sd sqrt(3.2 / 4) = 0.894, standard error 0.4,
    # t(0.975, 4 df) = 2.7764, half-width 1.1106: [0.2894, 2.5106]
    kd = [91.0, 92.0, 91.0, 93.0, 94.0]
    labels_only = [90.0, 90.0, 91.0, 91.0, 92.0]
    d = paired_difference(kd, labels_only)
    assert (d.mean, d.n) == (pytest.approx(1.4), 5)
    assert d.low == pytest.approx(0.2894, abs=1e-4) and d.high == pytest.approx(2.5106, abs=1e-4)
    assert (
        d.as_dict()["significant"] is True
        and "significant gain" in d.sentence()
        and "no significant" not in d.sentence()
    )


def test_a_gain_within_the_spread_is_no_significant_gain():
    # differences 1, -1, 2, 0, -2: mean 0, sd sqrt(10 / 4) = 1.581, se 0.7071, half-width 1.9632
    d = paired_difference([91.0, 89.0, 92.0, 90.0, 88.0], [90.0] * 5)
    assert d.mean == pytest.approx(0.0) and d.high == pytest.approx(1.9632, abs=1e-4)
    assert not d.significant
    assert d.sentence() == "+0.00 points, 95% interval [-1.96, +1.96] over 5 seeds: no significant gain"


def test_a_significant_loss_is_not_called_a_gain_of_zero():
    d = paired_difference([88.0, 89.0, 88.5], [90.0, 90.5, 90.0])
    assert d.high < 0 and d.significant and d.sentence().endswith("significant loss")


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([1.0, 2.0], [1.0])
