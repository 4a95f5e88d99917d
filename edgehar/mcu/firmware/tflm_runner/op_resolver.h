// The TFLM kernels edgehar's runner and wrist firmware register (the int8 and float ops that
// HAR students and baselines use). A model with any other op fails AllocateTensors with TFLM's
// "Didn't find op for builtin opcode '<OP>'".
#ifndef EDGEHAR_OP_RESOLVER_H
#define EDGEHAR_OP_RESOLVER_H

#include "tensorflow/lite/micro/micro_op_resolver.h"

const tflite::MicroOpResolver& edgehar_op_resolver();

#endif
