// Shared helpers for wanlora kernels: bf16 conversion and small index helpers.
// Every kernel symbol is extern "C" and named <op>_<pass>_<dtype> (STYLE.md §3).
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>
