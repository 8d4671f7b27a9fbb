"""INT8 calibration on the workstation, without TensorRT.

One set of activation ranges, computed once with ONNX Runtime on unlabelled target images, feeds
every INT8 artifact: the Q/DQ model for TensorRT, the CPU model for ONNX Runtime and the TensorRT
calibration cache. Modules: ``calibset`` (the seeded calibration draw), ``graph`` (which ONNX
nodes may be quantized), ``ranges`` (minmax / percentile / entropy ranges), ``qdq`` (the two
quantized models), ``cache`` (TensorRT's calibration cache format), ``gate`` (the accuracy gate),
``batcher`` (fixed-size batches for TensorRT's calibrator).
"""
