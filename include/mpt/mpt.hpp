#pragma once
// mpt: header-only mixed-precision training on CPUs. This header includes
// the whole library; each folder's header (mpt/core.hpp, ...) includes one area,
// in the order of the layers (a folder includes only from the ones above it).
#include <mpt/core.hpp>
#include <mpt/policy.hpp>
#include <mpt/kernels.hpp>
#include <mpt/io.hpp>
#include <mpt/nn.hpp>
#include <mpt/optim.hpp>
#include <mpt/data.hpp>
#include <mpt/dist.hpp>
#include <mpt/train.hpp>
