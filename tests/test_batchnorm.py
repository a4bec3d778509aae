"""Tests of manifolds.nn.batchnorm: RiemannianBatchNorm, SPDNetBN and LieBN (issue 4, items 2-3)."""

import torch

from manifolds.nn import EuclideanGeometry, RiemannianBatchNorm


def test_euclidean_matches_batchnorm1d_train():
    g = torch.Generator().manual_seed(0)
    B, C = 16, 5
    x = torch.randn(B, C, generator=g, dtype=torch.float64) * 3 + 2
    bn = RiemannianBatchNorm(EuclideanGeometry(()), (), channels=(C,), dtype=torch.float64)
    ref = torch.nn.BatchNorm1d(C, dtype=torch.float64)
    with torch.no_grad():
        w = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
        b = torch.randn(C, generator=g, dtype=torch.float64)
        bn.shift.copy_(w), bn.bias.copy_(b), ref.weight.copy_(w), ref.bias.copy_(b)
    y, yr = bn(x), ref(x)
    torch.testing.assert_close(y, yr, rtol=0, atol=1e-14)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=1e-15)
