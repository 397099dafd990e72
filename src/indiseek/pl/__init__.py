"""Pictures of IndiSeek results; every function returns its matplotlib figure and can save it."""

from ._comparison import method_comparison
from ._diagnostics import diagnostics, lambda_tradeoff
from ._embeddings import embeddings
from ._importance import importance
from ._theta import rank_scatter, theta_ranking

__all__: list[str] = []
__all__ += ["diagnostics", "lambda_tradeoff"]
__all__ += ["importance"]
__all__ += ["embeddings", "method_comparison", "rank_scatter", "theta_ranking"]
