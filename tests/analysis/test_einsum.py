"""einsum against an operand no unit owns: the rewriter gathers that operand along the letters the
other operand lost (timm MViT-v2's ``einsum("byhwc,hkc->byhwk", q, rel_pos_h[dist])``: queries lose
head-dim positions, the relative-position table picked by an index keeps all of them)."""

import pytest
import torch
import torch.nn as nn

from otograph.testing.exact import check_exact


class RelPosScores(nn.Module):
    def __init__(self, tokens: int = 3, dim: int = 8):
        super().__init__()
        self.q, self.v, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.rel = nn.Parameter(torch.randn(2 * tokens - 1, dim))
        ar = torch.arange(tokens)
        self.register_buffer("dist", ar[:, None] - ar[None, :] + tokens - 1)

    def forward(self, x):  # x: (batch, tokens, dim)
        table = self.rel[self.dist]  # (tokens, tokens, dim), indexed: owned by no unit
        scores = torch.einsum("bic,ijc->bij", self.q(x), table)
        return self.out(scores.softmax(-1) @ self.v(x))


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_einsum_gathers_an_operand_no_unit_owns(frontend):
    torch.manual_seed(0)
    model = RelPosScores().eval()
    res = check_exact(model, torch.randn(2, 3, 8), torch.randn(4, 3, 8), frontend=frontend, fraction=0.5)
    v = res.verification
    assert v.exact and v.max_ref > 0.1 and v.params_after == res.expected_params, v
    q = next(g for g in res.space.prunable_groups if any(m.param == "q.weight" and m.axis == 0 for m in g.members))
    assert res.units.get(q.id)  # queries lost head-dim positions; the table was gathered to match
