"""One folder per loss family. Each holds its math (``functional``), its modules
(``modules``), its catalog entries (``spec``) and, where one exists, its Keras twin.
Nothing here is imported by ``import losskit.losses``: the families load on demand.
"""

#: the families whose ``spec`` modules make up the catalog, in catalog order
FAMILIES: tuple[str, ...] = (
    "regression",
    "classification",
    "divergence",
    "margin",
    "embedding",
    "ranking",
    "sequence",
    "imbalance",
    "robust",
    "triplet",
    "contrastive",
    "linear_ce",
    "angular_margin",
    "segmentation",
    "distillation",
)
