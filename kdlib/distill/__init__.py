"""Knowledge-distillation losses and objectives that plug into ``kdlib.train.fit``."""

from .kd import KDObjective, kd_loss  # noqa: F401
from .hpmkd import COMPONENTS, HPMKDObjective, HPMKDSettings  # noqa: F401
from .teacher_source import TeacherSource, teacher_source  # noqa: F401
