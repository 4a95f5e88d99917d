// edgehar wrist firmware: IMU frames in, activity predictions out, the int8 model on the MCU.
//
// Receives samples frames (PROTOCOL.md) on the UART, rebuilds the window the model card asks
// for (EDGEHAR_HOP from the card, the rest from model_int8.h): each sample -> physical value
// (int16 x scale) -> (x - mean) / std -> int8 at the model's input scale. Every hop it runs the
// model and answers with a text message  "P <window> <top class> <q0>,<q1>,...". Frames whose
// channel count differs from the model's get "ERR channels". A real sensor driver would feed
// push_sample() directly; over the UART the emulator and the bridge's replay stand in for it.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "board.h"
#include "edgehar_frame.h"
#include "model_int8.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef EDGEHAR_HOP
#define EDGEHAR_HOP G_EDGEHAR_MODEL_WINDOW
#endif
#ifndef EDGEHAR_ARENA_BYTES
#define EDGEHAR_ARENA_BYTES (128 * 1024)
#endif

namespace {
constexpr int kWindow = G_EDGEHAR_MODEL_WINDOW;
constexpr int kChannels = G_EDGEHAR_MODEL_CHANNELS;
constexpr int kClasses = G_EDGEHAR_MODEL_CLASSES;
constexpr size_t kMaxFrame = 1100;

alignas(16) uint8_t tensor_arena[EDGEHAR_ARENA_BYTES];
int8_t window[kWindow][kChannels];  // ring of the last kWindow samples, already quantised
int filled = 0, head = 0, since_last = 0;
uint32_t windows_run = 0;
uint16_t tx_seq = 0;
uint8_t rx[kMaxFrame], decoded[kMaxFrame], tx[256];

void send_text(const char* text) {
  size_t n = edgehar_message_encode(tx_seq++, text, tx, sizeof(tx));
  board_uart_write(tx, n);
}

size_t cobs_decode(const uint8_t* in, size_t len, uint8_t* out) {
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    uint8_t code = in[i++];
    if (code == 0 || i + code - 1 > len) return 0;
    for (uint8_t k = 1; k < code; k++) out[o++] = in[i++];
    if (code < 0xFF && i < len) out[o++] = 0;
  }
  return o;
}

int8_t quantise(float x) {
  float q = roundf(x / G_EDGEHAR_MODEL_INPUT_SCALE) + G_EDGEHAR_MODEL_INPUT_ZERO_POINT;
  return (int8_t)(q < -128.f ? -128.f : q > 127.f ? 127.f : q);
}

void run_model(tflite::MicroInterpreter& interpreter) {
  int8_t* in = interpreter.input(0)->data.int8;
  for (int s = 0; s < kWindow; s++) {  // oldest sample first
    memcpy(in + s * kChannels, window[(head + s) % kWindow], kChannels);
  }
  if (interpreter.Invoke() != kTfLiteOk) {
    send_text("ERR invoke failed");
    return;
  }
  const int8_t* out = interpreter.output(0)->data.int8;
  int top = 0;
  for (int c = 1; c < kClasses; c++) top = out[c] > out[top] ? c : top;
  char text[32 + 5 * kClasses];
  int n = snprintf(text, sizeof(text), "P %lu %d ", (unsigned long)windows_run++, top);
  for (int c = 0; c < kClasses; c++) {
    n += snprintf(text + n, sizeof(text) - n, c ? ",%d" : "%d", out[c]);
  }
  send_text(text);
}

void push_sample(tflite::MicroInterpreter& interpreter, const float* x) {
  for (int c = 0; c < kChannels; c++) {
    window[head][c] = quantise((x[c] - g_edgehar_model_norm_mean[c]) / g_edgehar_model_norm_std[c]);
  }
  head = (head + 1) % kWindow;
  if (filled < kWindow) filled++;
  if (filled == kWindow && (since_last == 0 || since_last >= EDGEHAR_HOP)) {
    run_model(interpreter);
    since_last = 0;
  }
  since_last++;
}

void on_frame(tflite::MicroInterpreter& interpreter, const uint8_t* p, size_t n) {
  if (n < 6 || edgehar_crc16(p, n - 2, 0xFFFF) != (uint16_t)(p[n - 2] | p[n - 1] << 8)) return;
  if (p[0] != EDGEHAR_FRAME_VERSION || p[1] != EDGEHAR_TYPE_SAMPLES || n < EDGEHAR_HEADER_BYTES + 2)
    return;
  float scale;
  memcpy(&scale, p + 12, 4);
  int channels = p[16], samples = p[17];
  if ((size_t)(EDGEHAR_HEADER_BYTES + 2 * channels * samples + 2) != n) return;
  if (channels != kChannels) {
    send_text("ERR channels");
    return;
  }
  for (int s = 0; s < samples; s++) {
    float x[kChannels];
    for (int c = 0; c < kChannels; c++) {
      const uint8_t* v = p + EDGEHAR_HEADER_BYTES + 2 * (s * kChannels + c);
      x[c] = (float)(int16_t)(v[0] | v[1] << 8) * scale;
    }
    push_sample(interpreter, x);
  }
}
}  // namespace

int main() {
  board_init();
  const tflite::Model* model = tflite::GetModel(g_edgehar_model);
  static tflite::MicroInterpreter interpreter(model, edgehar_op_resolver(), tensor_arena,
                                              sizeof(tensor_arena));
  uint8_t zero = 0;
  board_uart_write(&zero, 1);  // PROTOCOL.md: a delimiter first, so the host drops nothing
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    send_text("ERR AllocateTensors failed");
    for (;;) {
    }
  }
  char ready[48];
  snprintf(ready, sizeof(ready), "# edgehar device arena=%u", (unsigned)interpreter.arena_used_bytes());
  send_text(ready);
  size_t len = 0;
  for (;;) {
    int b = board_uart_read();
    if (b != 0) {
      if (len < kMaxFrame) rx[len++] = (uint8_t)b;
      continue;
    }
    size_t n = len <= kMaxFrame ? cobs_decode(rx, len, decoded) : 0;
    len = 0;
    if (n) on_frame(interpreter, decoded, n);
  }
}
