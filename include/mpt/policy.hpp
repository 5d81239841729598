#pragma once
// mpt/policy: the compile-time choices, precision and SIMD backend.
#include <mpt/policy/backend.hpp>
#include <mpt/policy/precision.hpp>
