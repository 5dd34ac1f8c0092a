"""HESSO: a ``torch.optim`` optimizer that trains a model and drives whole units of an otograph
search space to exactly zero, so ``otograph.compress`` can remove them.

>>> from hesso import HESSO, CRIC
>>> CRIC().max_cycles
3
"""

from hesso.cric import CRIC
from hesso.distill import Teacher, distillation_loss, feature_loss
from hesso.optimizer import HESSO
from hesso.schedule import Schedule
from hesso.target import Target

__all__ = ["HESSO", "HESSOCRIC", "CRIC", "Schedule", "Target", "Teacher", "distillation_loss", "feature_loss"]


def HESSOCRIC(model, space, *, cric: CRIC | None = None, **kwargs) -> HESSO:  # noqa: N802
    """HESSO with the corrective cycle switched on (``cric`` defaults to :class:`CRIC` ()).

    Same arguments as :class:`HESSO`.
    """
    return HESSO(model, space, cric=cric or CRIC(), **kwargs)
