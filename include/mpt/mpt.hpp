#pragma once
// mpt: header-only mixed-precision training on CPUs. This header includes
// the whole library; each folder's header (mpt/core.hpp, ...) includes one area.
#include <mpt/core.hpp>
#include <mpt/policy.hpp>
#include <mpt/kernels/philox.hpp>
#include <mpt/kernels/softmax.hpp>
#include <mpt/kernels/layer_norm.hpp>
#include <mpt/kernels/gelu.hpp>
#include <mpt/kernels/dropout.hpp>
#include <mpt/kernels/residual.hpp>
#include <mpt/kernels/add_layer_norm.hpp>
#include <mpt/kernels/embedding.hpp>
#include <mpt/kernels/cross_entropy.hpp>
#include <mpt/nn.hpp>
#include <mpt/optim.hpp>
#include <mpt/data.hpp>
#include <mpt/io.hpp>
