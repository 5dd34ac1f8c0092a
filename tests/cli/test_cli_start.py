"""``otograph prune --weights FILE --distill --finetune-epochs N --round-to N`` (issue 9): start from a
trained model, distil from a frozen copy of it, fine-tune after the pruning periods, round widths."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from otograph.testing.factories import TinyCNN, random_data

MODEL = "otograph.testing.factories:tiny_cnn"
DATA = ("--data", "otograph.testing.factories:random_data", "--batch-size", "16")
EPOCHS, FINETUNE, STEPS_PER_EPOCH = 2, 1, 4  # random_data: 64 samples, batches of 16


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save(TinyCNN(10).state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def run(weights, tmp_path_factory):
    """One run with every new flag, spying on the teacher, HESSO and the two loss terms."""
    from hesso import distill
    from otograph.cli import job, main

    seen: dict = {"teachers": [], "kd": [], "ce": [], "opt": []}
    real_teacher, real_hesso, real_kd, real_ce = job.Teacher, job.HESSO, distill.distillation_loss, F.cross_entropy

    class SpyTeacher(real_teacher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["teachers"].append(self)

    def spy_hesso(*args, **kwargs):
        seen["opt"].append(real_hesso(*args, **kwargs))
        return seen["opt"][-1]

    def spy_kd(student, teacher, *args, **kwargs):
        value = real_kd(student, teacher, *args, **kwargs)
        if student.requires_grad:  # not Teacher's own check of its settings
            assert not teacher.requires_grad and teacher.grad_fn is None
            seen["kd"].append((value.item(), kwargs))
        return value

    def spy_ce(*args, **kwargs):
        value = real_ce(*args, **kwargs)
        if torch.is_grad_enabled():
            seen["ce"].append(value.item())
        return value

    out = tmp_path_factory.mktemp("runs") / "start"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(job, "Teacher", SpyTeacher)
        mp.setattr(job, "HESSO", spy_hesso)
        mp.setattr(distill, "distillation_loss", spy_kd)
        mp.setattr(F, "cross_entropy", spy_ce)
        code = main(["prune", MODEL, *DATA, "--weights", weights, "--distill", "--epochs", str(EPOCHS),
                     "--finetune-epochs", str(FINETUNE), "--round-to", "3", "--sparsity", "0.5", "--out", str(out),
                     "-q"])
    assert code == 0
    return out, json.loads((out / "run.json").read_text()), seen


def test_before_is_the_starting_models_accuracy(run, weights):
    from otograph.cli.training import evaluate

    out, record, _ = run
    start = TinyCNN(10)
    start.load_state_dict(torch.load(weights, weights_only=True))
    expected = evaluate(start, random_data(16)[1])
    t = record["training"]
    assert record["before"]["accuracy"] == expected and t["baseline"] == "start" and t["weights"] == weights
    assert record["history"]["dense"] is None and t["baseline_seconds"] == 0.0  # no dense baseline is trained
    report = (out / "report.md").read_text()
    assert f"as loaded from `{weights}`, before any training" in report
    assert f"| validation accuracy | {expected:.2f}% |" in report


def test_the_teacher_is_a_frozen_copy_of_the_start(run, weights):
    _, record, seen = run
    [teacher] = seen["teachers"]
    [opt] = seen["opt"]
    assert teacher.temperature == 2.0 and record["training"]["distill"] == 2.0
    assert not teacher.model.training and all(not p.requires_grad for p in teacher.model.parameters())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt and not in_opt & {id(p) for p in teacher.model.parameters()}
    start = torch.load(weights, weights_only=True)  # untouched by training, running statistics included
    assert all(torch.equal(v, start[k]) for k, v in teacher.model.state_dict().items())


def test_the_loss_is_cross_entropy_plus_the_distillation_term(run):
    _, record, seen = run
    h = record["history"]["hesso"]
    steps = (EPOCHS + FINETUNE) * STEPS_PER_EPOCH
    assert len(h["loss"]) == len(h["distill"]) == len(seen["kd"]) == len(seen["ce"]) == steps
    assert [kd for kd, _ in seen["kd"]] == h["distill"] and all(kw["temperature"] == 2.0 for _, kw in seen["kd"])
    assert max(h["distill"]) > 0  # the student leaves the teacher
    for loss, ce, kd in zip(h["loss"], seen["ce"], h["distill"], strict=True):
        assert loss == float(torch.tensor(ce) + torch.tensor(kd))  # the same float32 sum, exactly


def test_finetune_epochs_follow_the_pruning_periods(run):
    _, record, _ = run
    t = record["training"]
    assert (t["epochs"], t["finetune_epochs"], t["steps"]) == (EPOCHS, FINETUNE, (EPOCHS + FINETUNE) * STEPS_PER_EPOCH)
    p = t["pruning"]
    assert p["start_step"] + p["steps"] <= EPOCHS * STEPS_PER_EPOCH  # the periods fit into --epochs
    assert len(record["history"]["hesso"]["val_accuracy"]) == EPOCHS + FINETUNE
    assert t["hesso"]["stage"] == "done" and t["hesso"]["step"] == t["steps"]


def test_round_to_keeps_multiples(run):
    _, record, seen = run
    assert record["training"]["round_to"] == 3 and seen["opt"][0].layout.divisors == [3, 3]
    kept = {g["id"]: (g["kept"], g["units"]) for g in record["groups"] if g["prunable"]}
    assert set(kept) == {"conv1", "conv2"} and sum(u - k for k, u in kept.values()) > 0
    assert all(k % 3 == 0 or k == u for k, u in kept.values()), kept
    removed = json.loads((run[0] / "removed_units.json").read_text())
    assert {g: u - len(removed.get(g, [])) for g, (_, u) in kept.items()} == {g: k for g, (k, _) in kept.items()}


def test_batch_loss_adds_the_scaled_kl_to_the_cross_entropy():
    from hesso import Teacher
    from otograph.cli.training import batch_loss

    torch.manual_seed(0)
    student, x, y = TinyCNN(10), torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    teacher = Teacher(TinyCNN(10), temperature=3.0)
    loss, kd = batch_loss(student, x, y, teacher)
    logits, t = student(x), teacher.model(x)
    p_t = F.softmax(t / 3.0, -1)
    kl = (p_t * (F.log_softmax(t / 3.0, -1) - F.log_softmax(logits / 3.0, -1))).sum(-1).mean() * 9.0
    assert torch.allclose(kd, kl, rtol=1e-5, atol=0) and kd > 0
    assert torch.equal(loss, F.cross_entropy(logits, y) + kd)
    plain, none = batch_loss(student, x, y)
    assert none is None and torch.equal(plain, F.cross_entropy(logits, y))


def test_distill_takes_an_optional_temperature():
    from otograph.cli.commands import prune_options
    from otograph.cli.main import build_parser

    def options(*flags):
        return prune_options(build_parser().parse_args(["prune", *flags]))

    assert options().distill is None and options("--distill").distill == 2.0
    assert options("--distill", "4").distill == 4.0
    o = options("--round-to", "8", "--finetune-epochs", "3")
    assert (o.round_to, o.finetune_epochs, o.target.kind, o.target.fraction) == (8, 3, "flops", 0.5)


def test_a_model_after_a_bare_distill_says_where_it_goes(cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli("prune", "--distill", "torchvision:resnet18")
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "'torchvision:resnet18' is not a temperature: write the model before --distill, or give T" in err


@pytest.mark.parametrize("flags, message", [
    (("--distill", "0"), "--distill must be > 0, got 0"),
    (("--round-to", "0"), "--round-to must be ≥ 1, got 0"),
    (("--finetune-epochs", "-1"), "--finetune-epochs must be ≥ 0, got -1"),
])
def test_bad_values_are_refused(cli, tmp_path, flags, message):
    code, _, err = cli("prune", *flags, "--out", tmp_path / "r")
    assert code == 2 and message in err and list(tmp_path.iterdir()) == []
