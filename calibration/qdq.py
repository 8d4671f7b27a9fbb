"""The two quantized ONNX models, both from the same activation ranges.

- ``int8-qdq`` (model.int8.onnx, for TensorRT explicit quantization and ONNX Runtime): symmetric
  int8 activations (zero point 0), per-channel symmetric int8 weights kept as float weights with
  a Q/DQ pair, float biases (TensorRT's importer takes no int32 DequantizeLinear).
- ``int8-cpu`` (model.int8-cpu.onnx, for ONNX Runtime on CPUs): uint8 activations with int8
  per-channel weights: the u8s8 kernels (VNNI on x86) are the fast ones there; symmetric int8
  activations measured slower than FP32 on x86.

Nodes named in ``float_nodes`` (the encoder, and layers the accuracy gate keeps in float) get no
Q/DQ around them.
"""

from __future__ import annotations

from pathlib import Path

from .ranges import ActivationRanges

VARIANTS = ("int8-qdq", "int8-cpu")


def quantize(
    fp32_path: str | Path,
    out_path: str | Path,
    ranges: ActivationRanges,
    variant: str,
    float_nodes: list[str],
) -> None:
    """Write the ``variant`` INT8 model of ``fp32_path`` to ``out_path`` (not atomically)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    if variant not in VARIANTS:
        raise ValueError(f"unknown INT8 variant {variant!r}")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp32_path)))
    symmetric = variant == "int8-qdq"
    extra = {
        "ActivationSymmetric": symmetric,
        "WeightSymmetric": True,
        # TensorRT's ONNX parser rejects DequantizeLinear of int32 (quantized biases) and
        # documents weights as float -> QuantizeLinear -> DequantizeLinear; the CPU model keeps
        # int8 weights and int32 biases, which ONNX Runtime fuses into QLinearConv.
        "QuantizeBias": not symmetric,
        "AddQDQPairToWeight": symmetric,
    }
    # The quantizer logs advice at WARNING level that does not apply here (pre-processing).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantizer = QDQQuantizer(
            model,
            True,  # per_channel
            False,  # reduce_range: VNNI and TensorRT need no 7-bit weights
            QuantType.QInt8,
            QuantType.QInt8 if symmetric else QuantType.QUInt8,
            ranges.tensors_data(),
            [],
            list(float_nodes),
            sorted(set(QDQRegistry) | set(QLinearOpsRegistry)),  # what quantize_static quantizes
            extra,
        )
        quantizer.quantize_model()
    finally:
        root.setLevel(level)
    model = quantizer.model.model
    del model.graph.value_info[:]  # shapes inferred for quantization, not part of the artifact
    onnx.save(model, str(out_path))
