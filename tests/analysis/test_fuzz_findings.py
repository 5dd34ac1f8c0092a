"""Models the fuzzer (tools/fuzz.py) found failing, shrunk by hand: each compresses exactly for every
choice of one unit (or none) per group, through both frontends, or is refused with a clear reason."""

import copy
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph
from otograph.errors import RewriteError


def every_removal(model: nn.Module, x: torch.Tensor, frontend: str) -> int:
    """Compress ``model`` for every choice of one unit (or none) per prunable group and compare
    compact vs zeroed in float64; the number of removals checked."""
    model, x = model.double().eval(), x.double()
    space = otograph.search_space(model, x, frontend=frontend)
    groups = space.prunable_groups
    checked = 0
    for pick in itertools.product(*[[None, *range(g.num_units if g.num_units > 1 else 0)] for g in groups]):
        units = {g.id: [u] for g, u in zip(groups, pick, strict=True) if u is not None}
        if not units:
            continue
        ref = copy.deepcopy(model)
        space.zero_(ref, units)
        compact = otograph.compress(ref, space, units)
        torch.testing.assert_close(compact(x), ref(x), rtol=0, atol=1e-12)
        checked += 1
    return checked


class GatedCat(nn.Module):
    """The input concatenated to a prunable output, times a gate that can lose positions of the
    input's part (BatchNorm zeroes them): the input is gathered to the gate's kept positions."""

    def __init__(self):
        super().__init__()
        self.lin0, self.lin1, self.bn, self.head = nn.Linear(2, 2), nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)

    def forward(self, x):
        x = torch.cat([F.relu(self.lin0(x)), x], 1)
        return self.head(x * self.bn(self.lin1(x)))


class StackedInput(nn.Module):
    """``stack([x, f(x)]).sum(0)``: stack aligns its inputs like an add; BatchNorm after it zeroes
    removed positions, so the input is gathered to them."""

    def __init__(self):
        super().__init__()
        self.lin, self.bn, self.head = nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.bn(torch.stack([x, self.lin(x)], dim=0).sum(0)))


@pytest.mark.parametrize("frontend", ["fx", "export"])
@pytest.mark.parametrize("make", [GatedCat, StackedInput])
def test_inputs_follow_partly_shrinking_operands(make, frontend):
    torch.manual_seed(0)
    assert every_removal(make(), torch.randn(4, 2 if make is GatedCat else 3), frontend) >= 3


class OneChannelZeroed(nn.Module):
    """A slice of one channel, zeroed in place: its unit stays (a one-position axis reads as broadcast)."""

    def __init__(self):
        super().__init__()
        self.lin, self.head = nn.Linear(3, 4), nn.Linear(3, 2)

    def forward(self, x):
        x = self.lin(x)[..., 1:4].clone()
        x[..., 2:].zero_()
        return self.head(x)


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_one_channel_slice_is_pinned(frontend):
    torch.manual_seed(0)
    model, x = OneChannelZeroed(), torch.randn(2, 3)
    space = otograph.search_space(model.double(), x.double(), frontend=frontend)
    reasons = [g.reason for g in space.groups if not g.prunable and g.id.startswith("lin")]
    assert any("one element along a channel axis" in r for r in reasons), reasons
    assert every_removal(model, x, frontend) >= 1


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_attention_of_width_one_keeps_what_it_picks(frontend):
    """Width 1: q, k and v are one position each of the packed projection, picked by an integer."""
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(1, 1, batch_first=True, bias=False)

        def forward(self, x):
            return x + self.mha(x, x, x)[0]

    every_removal(Net(), torch.randn(2, 3, 1), frontend)  # nothing the compact model cannot pick


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_shuffle_over_a_concatenation_with_unowned_channels(frontend):
    """Slab alignment ignores pinned units (it looped forever on a shuffle next to an input)."""
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 1)

        def forward(self, x):
            x = torch.cat((F.celu(self.conv(x)), x, x), dim=1)
            return x.view(x.shape[0], 2, 4, 1, 2).transpose(1, 2).reshape(x.shape[0], 8, 1, 2)

    space = otograph.search_space(Net().double(), torch.randn(2, 2, 1, 2, dtype=torch.float64), frontend=frontend)
    assert not space.group("conv").prunable


def test_export_refuses_a_cast_baked_in_before_a_dtype_change():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.head = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(torch.relu(self.lin(x)).to(x.dtype))

    model, x = Net(), torch.randn(2, 3)
    space = otograph.search_space(model, x, frontend="export")
    with pytest.raises(RewriteError, match="casts to torch.float32.*now torch.float64"):
        otograph.compress(model.double(), space, {"lin": [0]})
    fx_space = otograph.search_space(model.float(), x, frontend="fx")  # fx keeps x.dtype symbolic
    compact = otograph.compress(model.double(), fx_space, {"lin": [0]})
    assert compact(x.double()).dtype == torch.float64


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_split_pieces_never_empty(frontend):
    """A two-channel piece of a split could lose both channels: one of them stays."""
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.head = nn.Linear(4, 8), nn.Linear(8, 3)

        def forward(self, x):
            a, b = torch.split(self.lin(x), [6, 2], dim=-1)
            return self.head(torch.cat([b, a], -1))

    assert every_removal(Net(), torch.randn(2, 4), frontend) == 6  # one channel of each piece stays


def test_tensor_methods_bind_ints_to_dims_not_flags():
    """``x.var(1)`` is ``var(dim=1)``: an int never binds to a bool parameter of another overload."""
    from otograph.graph.signature import bind

    gm = torch.fx.symbolic_trace(Reductions())
    bound = {n.name: dict(bind(n).items()) for n in gm.graph.nodes if n.op == "call_method"}
    assert bound["var"]["dim"] == 1 and "unbiased" not in bound["var"]
    assert bound["var_1"]["unbiased"] is True and "dim" not in bound["var_1"]


class Reductions(nn.Module):
    def forward(self, x):
        return x.var(1) + x.var(True)


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_variance_over_tokens_of_one_channel(frontend):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.head = nn.Linear(2, 5), nn.Linear(1, 3)

        def forward(self, x):
            return self.head(self.lin(x)[..., :1].var(1))

    space = otograph.search_space(Net(), torch.randn(2, 3, 2), frontend=frontend, strict=True)
    read = space.group("lin")  # the channel the head reads: a group of its own, never emptied
    assert read.num_units == 1 and read.unit_indices(0)[("lin.weight", 0)] == [0]
    assert every_removal(Net(), torch.randn(2, 3, 2), frontend) == 4  # each unread channel


class NormOverInput(nn.Module):
    """A norm over a concatenation of a prunable output and the input, then a squeeze-excite gate:
    the input's channels are never zero after the norm, so the gate's units there must stay (the
    norm claimed every position zero; a wrong model, found by the 10,000-case run)."""

    def __init__(self, norm: str):
        super().__init__()
        self.norm = norm
        self.conv, self.se1, self.se2, self.head = nn.Conv1d(2, 2, 1), nn.Conv1d(4, 2, 1), nn.Conv1d(2, 4, 1), nn.Linear(4, 3)
        self.ln, self.bn = nn.LayerNorm(4), nn.BatchNorm1d(4)

    def forward(self, x):
        x = torch.cat([F.relu(self.conv(x)), x], 1)
        x = self.ln(x.permute(0, 2, 1)).permute(0, 2, 1) if self.norm == "ln" else self.bn(x)
        x = x * torch.sigmoid(self.se2(F.relu(self.se1(x.mean(2, keepdim=True)))))
        return self.head(x.mean(2))


@pytest.mark.parametrize("frontend", ["fx", "export"])
@pytest.mark.parametrize("norm", ["ln", "bn"])
def test_a_norm_over_an_input_does_not_zero_it(norm, frontend):
    torch.manual_seed(0)
    model = NormOverInput(norm)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1), model.bn.weight.uniform_(0.5, 1.5), model.bn.bias.uniform_(-1, 1)
    assert every_removal(model, torch.randn(3, 2, 5), frontend) >= 3


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_slice_of_one_head_zeroed_in_place(frontend):
    """Heads merged through a batched matmul share one element per head: a slice of one head's
    positions reads as broadcast, so that head stays (removing it would empty the slice)."""
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.head = nn.Linear(2, 12), nn.Linear(2, 12), nn.Linear(2, 12), nn.Linear(12, 3)

        def forward(self, x):
            B, N = x.shape[0], x.shape[1]
            q, k, v = (f(x).view(B, N, 4, 3).transpose(1, 2).reshape(B * 4, N, 3) for f in (self.q, self.k, self.v))
            a = torch.bmm(q, k.transpose(1, 2)).softmax(-1)
            y = torch.bmm(a, v).view(B, 4, N, 3).transpose(1, 2).reshape(B, N, 12).clone()
            y.narrow(2, 9, 3).zero_()
            return self.head(y.mean(1))

    assert every_removal(Net(), torch.randn(2, 3, 2), frontend) >= 2


class ScaledInputGate(nn.Module):
    """The input concatenated to a prunable output, scaled by a per-channel parameter, then gated
    (10,000-case run, seed 17, case 7,842): the parameter is zero once *its* rows are, so on the
    input's channels those rows own the product; claiming it zero there with no owner let the gate's
    units go with the head's columns kept (fx: max|Δ| 0.05)."""

    def __init__(self):
        super().__init__()
        self.conv, self.gamma = nn.Conv1d(2, 2, 1), nn.Parameter(torch.randn(4, 1) * 0.3 + 1.0)
        self.gate, self.head = nn.Conv1d(4, 4, 1), nn.Linear(4, 3)

    def forward(self, x):
        x = torch.cat([F.relu(self.conv(x)), x], 1) * self.gamma
        with torch.no_grad():
            g = torch.sigmoid(self.gate(x.mean(2, keepdim=True)))
        return self.head((x * g).mean(2))


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_parameter_scaling_an_input_owns_its_positions(frontend):
    torch.manual_seed(0)
    model = ScaledInputGate()
    assert every_removal(model, torch.randn(2, 2, 3), frontend) >= 3
    space = otograph.search_space(model.double(), torch.randn(2, 2, 3).double(), frontend=frontend)
    owner = [g for g in space.prunable_groups if any(m.param == "gamma" and 3 in m.positions.tolist() for m in g.members)]
    assert len(owner) == 1 and {"gate.weight", "head.weight"} <= {m.param for m in owner[0].members}


class NormGroupWithInput(nn.Module):
    """GroupNorm over a prunable output concatenated with the input (seed 19, case 1,931): the last
    norm group holds channels of both, so it cannot go (the compact GroupNorm would get a channel
    count its group count does not divide); the other groups still can."""

    def __init__(self):
        super().__init__()
        self.conv, self.gn, self.head = nn.Conv2d(1, 8, 1), nn.GroupNorm(3, 9), nn.Linear(9, 3)

    def forward(self, x):
        return self.head(self.gn(torch.cat((F.gelu(self.conv(x)), x), 1)).mean((2, 3)))


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_norm_group_holding_an_input_channel_stays(frontend):
    torch.manual_seed(0)
    model = NormGroupWithInput()
    x = torch.randn(2, 1, 3, 3)
    assert every_removal(model, x, frontend) >= 2
    (group,) = otograph.search_space(model.double(), x.double(), frontend=frontend).prunable_groups
    assert group.num_units == 2  # norm groups 0 and 1; group 2 (channels 6, 7 and the input's) stays
