"""Export a student to deployable artifacts: `edgehar export STUDENT.pt --int8`.

`pipeline` (the folder, atomically), `keras_mirror` (the student rebuilt in Keras, BatchNorm
folded), `tflite` (fp32 + full-int8 conversion, graph checks, LiteRT / TFLite-Micro /
tflite-runtime runners), `compact` (lossless shrinking of both .tflite files, card
embedding, byte breakdown), `onnx` (fp32 + QDQ int8), `c_array` (`model_int8.h/.cc`), `parity`
(parity.json), `cli`.
"""
