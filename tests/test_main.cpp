// main() shared by the unit-test binaries: the process joins its launcher's world
// (MPI under mpirun, a world of one otherwise: init_process is a no-op outside a
// launcher), logging at warning level so test output stays readable.
#include <gtest/gtest.h>

#include "core/log.h"
#include "core/process.h"

int main(int argc, char** argv) {
  sy::init_process(&argc, &argv);
  sy::init_logging(sy::world_rank(), sy::world_size());
  spdlog::set_level(spdlog::level::warn);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  sy::finalize_process();
  return rc;
}
