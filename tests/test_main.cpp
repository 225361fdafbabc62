// main() shared by the unit-test binaries: logging at warning level so test
// output stays readable. No MPI: a unit test is a world of one.
#include <gtest/gtest.h>

#include "core/log.h"

int main(int argc, char** argv) {
  sy::init_logging(0, 1);
  spdlog::set_level(spdlog::level::warn);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
