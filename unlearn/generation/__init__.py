import unlearn.generation.cache_kwarg  # noqa: F401  (first: silences the harmless `cache` rename warning)
from unlearn.generation.decode import SamplingConfig, decode
from unlearn.generation.forward import TeacherForced, teacher_forced

__all__ = ["SamplingConfig", "TeacherForced", "decode", "teacher_forced"]
