"""manifold_rl — policies and controllers on Riemannian manifolds.

Sub-packages: :mod:`manifold_rl.data` (LASA demonstrations and their maps onto S²),
:mod:`manifold_rl.policies` (flow-matching policies), :mod:`manifold_rl.metrics`
(trajectory metrics), and the ``manifold-rl`` command line (:mod:`manifold_rl.cli`).
"""

__version__ = "0.1.0"
