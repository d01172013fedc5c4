"""modelgif: ModelGiF gradient fields for model functional distance (Song et al., ICCV 2023).

Typical use::

    import modelgif
    baselines = modelgif.make_baselines(images, "shuffled", seed=0)
    fields = [modelgif.gradient_field(m, images, baselines, target=1, n_steps=50) for m in models]
    D = modelgif.affinity_matrix(fields, metric="cosine")
"""

from .baselines import BASELINES, derangement, make_baselines
from .correlation import per_task_spearman
from .distance import METRICS, affinity_matrix
from .field import PRECISIONS, gradient_field, iter_gradient_field, write_chunks
from .quadrature import METHODS, nodes_and_weights
from .storage import FieldWriter, load_field, open_field, save_field
from .targets import TARGETS, target_selector
from .taskonomy import GROUND_TRUTH_TABLES, TASKS, load_encoder, load_ground_truth

__version__ = "0.1.0"

__all__ = [
    "BASELINES", "GROUND_TRUTH_TABLES", "METHODS", "METRICS", "PRECISIONS", "TARGETS", "TASKS",
    "FieldWriter", "affinity_matrix", "derangement", "gradient_field", "iter_gradient_field",
    "load_encoder", "load_field", "load_ground_truth", "make_baselines", "nodes_and_weights",
    "open_field", "per_task_spearman", "save_field", "target_selector", "write_chunks",
]
