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
    resolver.AddAbs();
    resolver.AddAdd();
    resolver.AddArgMax();
    resolver.AddAveragePool2D();
    resolver.AddBatchMatMul();
    resolver.AddCast();
    resolver.AddConcatenation();
    resolver.AddConv2D();
    resolver.AddDepthwiseConv2D();
    resolver.AddDequantize();
    resolver.AddDiv();
    resolver.AddElu();
    resolver.AddExp();
    resolver.AddExpandDims();
    resolver.AddFullyConnected();
    resolver.AddGather();
    resolver.AddHardSwish();
    resolver.AddL2Normalization();
    resolver.AddLeakyRelu();
    resolver.AddLogistic();
    resolver.AddLogSoftmax();
    resolver.AddMaximum();
    resolver.AddMaxPool2D();
    resolver.AddMean();
    resolver.AddMinimum();
    resolver.AddMul();
    resolver.AddNeg();
    resolver.AddPack();
    resolver.AddPad();
    resolver.AddPadV2();
    resolver.AddPrelu();
    resolver.AddQuantize();
    resolver.AddReduceMax();
    resolver.AddRelu();
    resolver.AddRelu6();
    resolver.AddReshape();
    resolver.AddRsqrt();
    resolver.AddShape();
    resolver.AddSlice();
    resolver.AddSoftmax();
    resolver.AddSplit();
    resolver.AddSqrt();
    resolver.AddSquaredDifference();
    resolver.AddSqueeze();
    resolver.AddStridedSlice();
    resolver.AddSub();
    resolver.AddSum();
    resolver.AddTanh();
    resolver.AddTranspose();
    resolver.AddUnpack();
  }
  return resolver;
}
