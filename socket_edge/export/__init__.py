"""Export: ONNX with a parity check, INT8 calibration artifacts, TensorRT engines, sidecars."""
