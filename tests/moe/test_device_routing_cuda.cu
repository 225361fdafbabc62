// The device-routing oracle tests (test_device_routing.cpp) compiled by nvcc, so
// Thrust runs them on the GPU; each skips ("skipped: no GPU") without one.
#include "backend/gpu_test.h"
#define SY_DEVICE_ROUTING_NEEDS() SY_REQUIRE_GPUS(1)
#include "moe/test_device_routing.cpp"
