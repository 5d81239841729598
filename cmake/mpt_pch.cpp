// The source of mpt_pch (cmake/mptInternal.cmake): the target exists to build the
// precompiled <mpt/mpt.hpp> that the tests, examples and benchmarks reuse.
