#pragma once
// mpt: header-only mixed-precision training on CPUs. This header includes
// the whole library; each folder's header (mpt/core.hpp, ...) includes one area.
#include <mpt/core.hpp>
#include <mpt/policy.hpp>
#include <mpt/kernels/gemm.hpp>
