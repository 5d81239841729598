#pragma once
// mpt/core: scalar types, tensors and views, errors, CPU features, threads.
#include <mpt/core/error.hpp>
