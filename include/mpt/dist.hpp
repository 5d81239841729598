#pragma once
// mpt/dist: data-parallel communication. The Communicator interface and its
// one-process implementation are here; the MPI one is in
// <mpt/dist/mpi_communicator.hpp>, which a program includes (and links MPI for)
// when it wants it: mpt itself never needs MPI.
#include <mpt/dist/communicator.hpp>
