"""Analysis tools (scanpy style: data first, results written under documented keys)."""

from ._diagnostics import completeness, diagnostics, independence
from ._importance import masking_importance
from ._integration import batch_asw, cell_type_asw, graph_connectivity, ilisi, integration_metrics
from ._lambda import lambda_tradeoff, select_lambda
from ._metrics import cluster_metrics, rank_correlation
from ._theta import theta_scores
from ._transfer import transfer_labels
from ._wnn import wnn_weights

__all__: list[str] = []
__all__ += ["completeness", "diagnostics", "independence"]
__all__ += ["masking_importance"]
__all__ += ["lambda_tradeoff", "select_lambda"]
__all__ += ["cluster_metrics", "rank_correlation", "theta_scores", "wnn_weights"]
__all__ += ["batch_asw", "cell_type_asw", "graph_connectivity", "ilisi", "integration_metrics"]
__all__ += ["transfer_labels"]
