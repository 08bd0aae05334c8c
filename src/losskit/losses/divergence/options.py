"""The divergences' options, declared once: the functionals validate with them, the modules and
the Keras twins are built from them, the catalog, ``losskit show``/``tune`` and the docs print
them. Torch-free."""

from losskit._options import HyperParam

LOG_TARGET = HyperParam(
    "log_target",
    False,
    "target holds log-probabilities (exact where p underflows)",
    valid="True or False",
)
TEMPERATURE = HyperParam(
    "temperature", 1.0, "softens both distributions", 1.0, 10.0, log=True, gt=0.0
)
