#include "op_resolver.h"

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace {
constexpr int kOps = 50;
tflite::MicroMutableOpResolver<kOps> resolver;
bool ready = false;
}  // namespace

const tflite::MicroOpResolver& edgehar_op_resolver() {
  if (!ready) {
    ready = true;
    resolver.AddAbs();  // ABS
    resolver.AddAdd();  // ADD
    resolver.AddArgMax();  // ARG_MAX
    resolver.AddAveragePool2D();  // AVERAGE_POOL_2D
    resolver.AddBatchMatMul();  // BATCH_MATMUL
    resolver.AddCast();  // CAST
    resolver.AddConcatenation();  // CONCATENATION
    resolver.AddConv2D();  // CONV_2D
    resolver.AddDepthwiseConv2D();  // DEPTHWISE_CONV_2D
    resolver.AddDequantize();  // DEQUANTIZE
    resolver.AddDiv();  // DIV
    resolver.AddElu();  // ELU
    resolver.AddExp();  // EXP
    resolver.AddExpandDims();  // EXPAND_DIMS
    resolver.AddFullyConnected();  // FULLY_CONNECTED
    resolver.AddGather();  // GATHER
    resolver.AddHardSwish();  // HARD_SWISH
    resolver.AddL2Normalization();  // L2_NORMALIZATION
    resolver.AddLeakyRelu();  // LEAKY_RELU
    resolver.AddLogistic();  // LOGISTIC
    resolver.AddLogSoftmax();  // LOG_SOFTMAX
    resolver.AddMaximum();  // MAXIMUM
    resolver.AddMaxPool2D();  // MAX_POOL_2D
    resolver.AddMean();  // MEAN
    resolver.AddMinimum();  // MINIMUM
    resolver.AddMul();  // MUL
    resolver.AddNeg();  // NEG
    resolver.AddPack();  // PACK
    resolver.AddPad();  // PAD
    resolver.AddPadV2();  // PADV2
    resolver.AddPrelu();  // PRELU
    resolver.AddQuantize();  // QUANTIZE
    resolver.AddReduceMax();  // REDUCE_MAX
    resolver.AddRelu();  // RELU
    resolver.AddRelu6();  // RELU6
    resolver.AddReshape();  // RESHAPE
    resolver.AddRsqrt();  // RSQRT
    resolver.AddShape();  // SHAPE
    resolver.AddSlice();  // SLICE
    resolver.AddSoftmax();  // SOFTMAX
    resolver.AddSplit();  // SPLIT
    resolver.AddSqrt();  // SQRT
    resolver.AddSquaredDifference();  // SQUARED_DIFFERENCE
    resolver.AddSqueeze();  // SQUEEZE
    resolver.AddStridedSlice();  // STRIDED_SLICE
    resolver.AddSub();  // SUB
    resolver.AddSum();  // SUM
    resolver.AddTanh();  // TANH
    resolver.AddTranspose();  // TRANSPOSE
    resolver.AddUnpack();  // UNPACK
  }
  return resolver;
}
