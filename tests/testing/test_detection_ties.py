"""The detector check compares detections in the reference's order, except among exactly tied
scores, whose order NMS and top-k leave unspecified (ssdlite320 with random weights returns two
boxes of equal score in either order)."""

import torch

from otograph.testing.detection import _compare, _order_ties


def _dets(scores, boxes):
    boxes = torch.tensor(boxes, dtype=torch.float64)
    return {"boxes": boxes, "scores": torch.tensor(scores, dtype=torch.float64),
            "labels": torch.arange(len(scores)) % 1}


def test_tied_detections_in_another_order_are_the_same_detections():
    want = [_dets([0.9, 0.5, 0.5, 0.1], [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5], [6, 6, 7, 7]])]
    got = [_dets([0.9, 0.5, 0.5, 0.1], [[0, 0, 1, 1], [4, 4, 5, 5], [2, 2, 3, 3], [6, 6, 7, 7]])]
    assert _compare(want, got)[1] == 2.0  # compared as returned, the swap is a difference
    assert _compare(want, _order_ties(want, got)) == (True, 0.0, 7.0)


def test_detections_out_of_order_without_a_tie_still_differ():
    want = [_dets([0.9, 0.6, 0.5], [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]])]
    got = [_dets([0.9, 0.6, 0.5], [[0, 0, 1, 1], [4, 4, 5, 5], [2, 2, 3, 3]])]
    assert _compare(want, _order_ties(want, got))[1] == 2.0
