#!/usr/bin/python3
"""Fits the piecewise polynomials behind the vectorized GELU in
include/mpt/kernels/gelu.hpp and prints them as C++ tables with their errors.

With a = |h|, GELU and its derivative are
  gelu(h)  = h/2 + a * C(a),          C(a) = erf(a / sqrt 2) / 2
  gelu'(h) = 1/2 + sign(h) * D(a),    D(a) = C(a) + a exp(-a^2 / 2) / sqrt(2 pi)
(both C and D are odd, so one table over a >= 0 serves both signs). Each table
splits [0, saturation) into pieces of width w around the centers k w (the
first piece half as wide), one polynomial in t = a - k w per piece; the last
piece is the constant 1/2 that C and D round to in fp32 beyond the
saturation point, and a is clamped to its center. One permute per coefficient
picks a lane's piece: 32 pieces for AVX-512 (vpermt2ps over two registers),
8 for AVX2 (vpermps, one register).

Least squares on Chebyshev nodes in fp64 (numpy), each piece widened by 2%
on both sides (a lane on a boundary may take either neighbour), highest
degree first as the Horner loops read them. The error printed is measured on
a dense grid with every coefficient rounded to fp32 and every Horner step
rounded to fp32 (what the kernels compute). Run by hand with /usr/bin/python3;
never by tests or CI.
"""
import math
import sys

import numpy as np

erf = np.vectorize(math.erf)
EPS = 2.0**-23


def half_erf(a):  # C(a)
    return 0.5 * erf(a / math.sqrt(2))


def derivative_minus_half(a):  # D(a)
    return half_erf(a) + a * np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)


def chebyshev_nodes(lo, hi, n):
    return (np.cos(np.pi * (np.arange(n) + 0.5) / n) + 1) / 2 * (hi - lo) + lo


def fit(f, saturation, pieces, degree, margin=0.02):
    """Piece k covers [(k - 1/2) w, (k + 1/2) w) around its center k w (piece 0
    starts at 0); the last piece, from the saturation point on, is 1/2. The
    kernels compute t = a - k w with w rounded to fp32 (one fma), so the
    centers are k times that fp32 width."""
    width = np.float64(np.float32(saturation / (pieces - 1.5)))
    coefficients = []
    for k in range(pieces - 1):
        center = k * width
        lo, hi = max(0.0, (k - 0.5) * width), (k + 0.5) * width
        x = chebyshev_nodes(lo - margin * width, hi + margin * width, 3000)
        coefficients.append(np.polyfit(x - center, f(x), degree))
    coefficients.append(np.array([0.0] * degree + [0.5]))
    return width, np.float32(coefficients)


def evaluate_fp32(width, coefficients, a):
    """The kernel's arithmetic: clamp to the last center, round a / width to the
    nearest piece k, t = a - k w (one rounding), Horner in fp32."""
    pieces = coefficients.shape[0]
    a = np.minimum(np.float32(a), np.float32((pieces - 1) * width))
    piece = np.rint(a.astype(np.float64) * np.float64(np.float32(1 / width))).astype(int)
    t = (a.astype(np.float64) - piece * width).astype(np.float32)
    p = coefficients[piece, 0]
    for j in range(1, coefficients.shape[1]):
        p = (p.astype(np.float64) * t.astype(np.float64) + coefficients[piece, j].astype(np.float64)).astype(np.float32)
    return p


def show(name, f, saturation, pieces, degree):
    width, coefficients = fit(f, saturation, pieces, degree)
    a = np.linspace(0, 10, 2000001).astype(np.float32)
    error = np.abs(evaluate_fp32(width, coefficients, a) - f(a.astype(np.float64)))
    print(f"// {name}: {pieces} pieces of {width:.9g}, degree {degree}, "
          f"max |error| {error.max() / EPS:.3f} eps at a = {a[error.argmax()]:.4f}")
    print(f"inline constexpr PiecewiseTable<{pieces}, {degree + 1}> {name}{{")
    print(f"    {np.float32(1 / width):.9e}f, {np.float32(width):.9e}f, {np.float32((pieces - 1) * width):.9e}f,")
    print("    {{" + "},\n     {".join(", ".join(f"{c:.9e}f" for c in coefficients[:, j]) for j in range(degree + 1)) + "}}};")


if __name__ == "__main__":
    show("gelu_half_erf_avx512", half_erf, 5.6, 32, 4)
    show("gelu_derivative_avx512", derivative_minus_half, 6.4, 32, 5)
    show("gelu_half_erf_avx2", half_erf, 5.6, 8, 6)
    show("gelu_derivative_avx2", derivative_minus_half, 6.4, 8, 8)
