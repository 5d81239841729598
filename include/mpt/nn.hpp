#pragma once
// mpt/nn: layers with forward/backward and their parameters; the BERT model.
#include <mpt/nn/parameters.hpp>
