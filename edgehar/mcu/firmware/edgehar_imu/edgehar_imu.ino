// edgehar_imu: stream a wrist-worn accelerometer to `edgehar live`.
//
// Board: Arduino Nano 33 BLE Sense Rev2 (BMI270) by default, or Rev1 (LSM9DS1) with
// EDGEHAR_IMU_LSM9DS1 defined; strapped to the wrist like a watch, USB towards the hand.
// Libraries: Arduino_BMI270_BMM150 (Rev2) or Arduino_LSM9DS1 (Rev1), from the Library Manager.
//
// Modes (firmware_bridge/PROTOCOL.md):
//   text  - Edge Impulse data-forwarder lines "x,y,z" in g (default)
//   frame - COBS frames with seq, device timestamp, int16 samples, CRC-16 (edgehar_frame.c)
// Commands over the port: 't' text mode, 'f' frame mode, 'r<Hz>\n' sample rate (1..400).
//
//   arduino-cli compile -b arduino:mbed_nano:nano33ble edgehar/mcu/firmware/edgehar_imu
//   edgehar live --port /dev/ttyACM0 --model artifacts/student

#if defined(EDGEHAR_IMU_LSM9DS1)
#include <Arduino_LSM9DS1.h>
#else
#include <Arduino_BMI270_BMM150.h>
#endif

#include "edgehar_frame.h"

static const float SCALE_G = 1.0f / 4096.0f;  // int16 LSB in g: covers +-8 g
static const uint8_t CHANNELS = 3;
static const uint8_t MAX_FRAME_SAMPLES = 40;

static bool frame_mode = false;
static uint32_t period_us = 20000;  // 50 Hz
static uint8_t frame_samples = 5;   // ~10 frames per second
static uint32_t next_us = 0;
static uint16_t seq = 0;

static int16_t frame_data[MAX_FRAME_SAMPLES * CHANNELS];
static uint8_t frame_fill = 0;
static uint32_t frame_t_us = 0;
static uint8_t wire[EDGEHAR_FRAME_MAX_BYTES(MAX_FRAME_SAMPLES, CHANNELS)];

static float last_xyz[3] = {0.0f, 0.0f, 1.0f};

static void send_message(const char *text) {
  if (frame_mode) {
    size_t n = edgehar_message_encode(seq++, text, wire, sizeof wire);
    Serial.write(wire, n);
  } else {
    Serial.println(text);
  }
}

static void send_declaration() {
  char line[96];
  unsigned long hz_x100 = 100000000UL / period_us;  // rate with two decimals, no printf float
  snprintf(line, sizeof line, "# edgehar rate=%lu.%02lu channels=acc_x,acc_y,acc_z units=g,g,g",
           hz_x100 / 100, hz_x100 % 100);
  if (frame_mode) {
    Serial.write((uint8_t)0x00);  // the host drops bytes before the first delimiter
  } else {
    Serial.println();  // the host drops the first (possibly cut) line: make it empty
  }
  send_message(line);
}

static void set_rate(long hz) {
  if (hz < 1 || hz > 400) {
    send_message("ERR rate must be 1..400 Hz");
    return;
  }
  period_us = 1000000UL / (uint32_t)hz;
  frame_samples = (uint8_t)constrain(hz / 10, 1, MAX_FRAME_SAMPLES);
  frame_fill = 0;
  next_us = micros();
  send_declaration();
}

static void handle_commands() {
  while (Serial.available()) {
    int c = Serial.read();
    if (c == 't' || c == 'f') {
      frame_mode = (c == 'f');
      frame_fill = 0;
      send_declaration();
    } else if (c == 'r') {
      set_rate(Serial.parseInt());
    }
  }
}

static int16_t to_lsb(float g) {
  float v = g / SCALE_G;
  if (v > 32767.0f) return 32767;
  if (v < -32768.0f) return -32768;
  return (int16_t)lroundf(v);
}

static void emit_sample(uint32_t t_us, const float xyz[3]) {
  if (!frame_mode) {
    // 5 decimals: 10 ug resolution, the Edge Impulse forwarder format
    Serial.print(xyz[0], 5);
    Serial.print(',');
    Serial.print(xyz[1], 5);
    Serial.print(',');
    Serial.println(xyz[2], 5);
    return;
  }
  if (frame_fill == 0) frame_t_us = t_us;
  for (uint8_t c = 0; c < CHANNELS; c++) frame_data[frame_fill * CHANNELS + c] = to_lsb(xyz[c]);
  if (++frame_fill < frame_samples) return;
  size_t n = edgehar_frame_encode(seq++, frame_t_us, period_us, SCALE_G, CHANNELS, frame_fill,
                                  frame_data, wire, sizeof wire);
  Serial.write(wire, n);
  frame_fill = 0;
}

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
  if (!IMU.begin()) {
    while (true) {  // keep telling the host why nothing comes
      Serial.println("ERR IMU init failed");
      delay(1000);
    }
  }
  send_declaration();
  next_us = micros();
}

void loop() {
  if (!Serial) {  // host closed the port: wait for it, then start clean
    while (!Serial) {
    }
    frame_fill = 0;
    send_declaration();
    next_us = micros();
  }
  handle_commands();
  uint32_t now = micros();
  if ((int32_t)(now - next_us) < 0) return;
  next_us += period_us;
  if ((int32_t)(now - next_us) > (int32_t)(10 * period_us)) next_us = now + period_us;  // fell behind
  float x, y, z;
  if (IMU.accelerationAvailable() && IMU.readAcceleration(x, y, z)) {
    last_xyz[0] = x;
    last_xyz[1] = y;
    last_xyz[2] = z;
  }  // else: keep the last reading (the IMU's own rate may sit below ours)
  emit_sample(now, last_xyz);
}
