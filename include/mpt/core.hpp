#pragma once
// mpt/core: scalar types, tensors and views, errors, CPU features, threads.
#include <mpt/core/aligned.hpp>
#include <mpt/core/arena.hpp>
#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/profile.hpp>
#include <mpt/core/random.hpp>
#include <mpt/core/system_memory.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/core/threads.hpp>
