#pragma once
// mpt/kernels: the hot loops — GEMM (packing + micro-kernels per instruction
// set) and the element-wise kernels and reductions of a transformer.
#include <mpt/kernels/add_layer_norm.hpp>
#include <mpt/kernels/cross_entropy.hpp>
#include <mpt/kernels/dropout.hpp>
#include <mpt/kernels/embedding.hpp>
#include <mpt/kernels/gelu.hpp>
#include <mpt/kernels/gemm.hpp>
#include <mpt/kernels/global_norm.hpp>
#include <mpt/kernels/layer_norm.hpp>
#include <mpt/kernels/philox.hpp>
#include <mpt/kernels/residual.hpp>
#include <mpt/kernels/softmax.hpp>
