"""RMPflow: batched, differentiable Riemannian Motion Policies (Cheng et al., WAFR 2018 / T-ASE 2021).

Modules: :mod:`.core` (RMP algebra, task maps, tree, :class:`RMPFlow`), :mod:`.gds` (geometric dynamical
systems with curvature terms and a Lyapunov monitor), :mod:`.leaves` (paper and Lula/RMP2 leaf library).
"""

from .core import (
    AffineMap,
    ComposedMap,
    FlowState,
    FunctionMap,
    IdentityMap,
    Leaf,
    RMPFlow,
    RMPNode,
    RMPRoot,
    SliceMap,
    TaskMap,
    TaskMapOutput,
    canonical_to_natural,
    check_state,
    natural_to_canonical,
)

__all__ = [
    "AffineMap",
    "ComposedMap",
    "FlowState",
    "FunctionMap",
    "IdentityMap",
    "Leaf",
    "RMPFlow",
    "RMPNode",
    "RMPRoot",
    "SliceMap",
    "TaskMap",
    "TaskMapOutput",
    "canonical_to_natural",
    "check_state",
    "natural_to_canonical",
]
