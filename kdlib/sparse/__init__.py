"""Adaptive Sparse Training: per-sample significance and the controller that decides which samples of a
batch get a learning pass. (The selective step and accounting build on these.)"""

from .controller import PIController, replay, select  # noqa: F401
from .significance import significance  # noqa: F401
from .objective import ASTObjective  # noqa: F401
