// main() shared by the unit-test binaries: MPI initialised (the fatal path uses
// it), logging at warning level so test output stays readable.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/log.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  sy::init_logging(0, 1);
  spdlog::set_level(spdlog::level::warn);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  MPI_Finalize();
  return rc;
}
