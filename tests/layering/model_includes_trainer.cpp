// Deliberately breaks the layering: the model depending on the trainer above it.
#include "train/trainer.h"
