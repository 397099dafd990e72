"""Analysis tools (scanpy style: data first, results written under documented keys)."""

from ._importance import masking_importance

__all__: list[str] = []
__all__ += ["masking_importance"]
