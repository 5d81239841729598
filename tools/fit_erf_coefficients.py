#!/usr/bin/python3
"""Fits the polynomial coefficients of the vectorized erf in
include/mpt/kernels/detail/simd.hpp and prints them with their errors.

  |x| < 0.9:          erf(x) = x * P(x^2),   P degree 6 (relative error)
  0.9 <= |x| < 3.92:  erf(x) = R(|x| - 2.41), R degree 14 (absolute error)

Least squares on Chebyshev nodes in fp64 (numpy), highest degree first, as
the Horner loops read them. Run by hand with /usr/bin/python3 (numpy); never
by tests or CI.
"""
import math

import numpy as np

erf = np.vectorize(math.erf)


def chebyshev_nodes(a, b, n):
    return (np.cos(np.pi * (np.arange(n) + 0.5) / n) + 1) / 2 * (b - a) + a


def fit(f, a, b, degree, shift, nodes):
    x = chebyshev_nodes(a, b, nodes)
    c = np.polyfit(x - shift, f(x), degree)
    grid = np.linspace(a, b, 200001)
    return c, np.max(np.abs(np.polyval(c, grid - shift) - f(grid)))


def show(name, c, err):
    print(f"// {name}: max fit error {err:.3g}")
    print(",\n".join(f"{v:.9e}f" for v in c))


small, e_small = fit(lambda t: erf(np.sqrt(t)) / np.sqrt(t), 1e-14, 0.81, 6, 0.0, 6000)
show("erf_small_coefficients, P(t = x^2) on [0, 0.81]", small, e_small)
large, e_large = fit(erf, 0.9, 3.92, 14, 2.41, 8000)
show("erf_large_coefficients, R(x - 2.41) on [0.9, 3.92]", large, e_large)
