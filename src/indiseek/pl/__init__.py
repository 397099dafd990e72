"""Pictures of IndiSeek results; every function returns its matplotlib figure and can save it."""

from ._importance import importance

__all__: list[str] = []
__all__ += ["importance"]
