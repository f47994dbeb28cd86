// Precompiled header for every torch-using target (keeps 2-core builds fast).
#pragma once
#include <torch/torch.h>
