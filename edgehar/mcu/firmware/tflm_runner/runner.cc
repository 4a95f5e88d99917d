// edgehar's TFLM runner for instruction counting under qemu-system-arm (semihosting).
//
// Reads model.tflite and input.bin from QEMU's working folder, runs one inference per
// input-sized chunk of input.bin, appends each output to output.bin, and prints to stdout:
//   arena_used <bytes>        what TFLM allocated (MicroInterpreter::arena_used_bytes)
//   invoke <k>                before each inference's op list
//   op <tag>                  each op TFLM's profiler hook saw, in order
//   done <n>                  inferences run
// The instruction counts themselves come from the QEMU plugin, which logs its counter when the
// marker functions below execute: B/E around Invoke(), b/e around each op.
#include <cstdio>
#include <cstring>

#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" void initialise_monitor_handles(void);
// The reference tree's cortex_m_generic DebugLog prints only through a registered callback (the
// CMSIS-NN tree's prints to stderr itself): weak, so the runner links against either.
extern "C" void RegisterDebugLogCallback(void (*callback)(const char*)) __attribute__((weak));
static void log_to_stderr(const char* s) { fputs(s, stderr); }

// Distinct bodies + noipa: GCC must neither merge nor inline them, the plugin needs each address.
volatile int edgehar_mark_sink;
extern "C" __attribute__((noipa)) void edgehar_mark_invoke_begin() { edgehar_mark_sink = 1; }
extern "C" __attribute__((noipa)) void edgehar_mark_invoke_end() { edgehar_mark_sink = 2; }
extern "C" __attribute__((noipa)) void edgehar_mark_op_begin() { edgehar_mark_sink = 3; }
extern "C" __attribute__((noipa)) void edgehar_mark_op_end() { edgehar_mark_sink = 4; }

namespace {

constexpr size_t kModelMax = 1536 * 1024;
constexpr size_t kArenaBytes = 2048 * 1024;
constexpr int kMaxEvents = 512;
__attribute__((section(".edgehar_big"), aligned(16))) uint8_t model_buf[kModelMax];
__attribute__((section(".edgehar_big.arena"), aligned(16))) uint8_t arena[kArenaBytes];

class OpMarker : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    uint32_t handle = count_;
    if (count_ < kMaxEvents) tags_[count_++] = tag;
    edgehar_mark_op_begin();
    return handle;
  }
  void EndEvent(uint32_t) override { edgehar_mark_op_end(); }
  void Reset() { count_ = 0; }
  void Print() const {
    for (int i = 0; i < count_; i++) printf("op %s\n", tags_[i]);
  }

 private:
  const char* tags_[kMaxEvents];
  int count_ = 0;
};

OpMarker profiler;

size_t read_file(const char* path, uint8_t* buf, size_t cap) {
  FILE* f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

}  // namespace

int main() {
  initialise_monitor_handles();
  if (RegisterDebugLogCallback) RegisterDebugLogCallback(log_to_stderr);
  size_t model_bytes = read_file("model.tflite", model_buf, kModelMax);
  if (model_bytes == 0 || model_bytes == kModelMax) {
    printf("error model.tflite missing or larger than %u bytes\n", (unsigned)kModelMax);
    return 3;
  }
  const tflite::Model* model = tflite::GetModel(model_buf);
  tflite::MicroInterpreter interpreter(model, edgehar_op_resolver(), arena, kArenaBytes,
                                       nullptr, &profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    printf("error AllocateTensors failed\n");
    return 4;
  }
  printf("arena_used %u\n", (unsigned)interpreter.arena_used_bytes());
  // output 0 is the class scores; a second output (the student's embedding) runs but is not kept
  if (interpreter.inputs_size() != 1 || interpreter.outputs_size() < 1) {
    printf("error the runner takes models with one input and at least one output\n");
    return 5;
  }
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  FILE* in = fopen("input.bin", "rb");
  FILE* out = fopen("output.bin", "wb");
  if (!in || !out) {
    printf("error cannot open input.bin / output.bin\n");
    return 6;
  }
  int k = 0;
  while (fread(input->data.raw, 1, input->bytes, in) == input->bytes) {
    profiler.Reset();
    edgehar_mark_invoke_begin();
    TfLiteStatus status = interpreter.Invoke();
    edgehar_mark_invoke_end();
    if (status != kTfLiteOk) {
      printf("error Invoke failed\n");
      return 7;
    }
    printf("invoke %d\n", k++);
    profiler.Print();
    fwrite(output->data.raw, 1, output->bytes, out);
  }
  fclose(in);
  fclose(out);
  printf("done %d\n", k);
  return 0;
}
