"""Knowledge-distillation losses and objectives that plug into ``kdlib.train.fit``."""

from .kd import KDObjective, kd_loss, precompute_teacher_logits  # noqa: F401
from .hpmkd import COMPONENTS, HPMKDObjective, HPMKDSettings, TeacherSource  # noqa: F401
