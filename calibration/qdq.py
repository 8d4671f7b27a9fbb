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
    float_outputs: bool = True,
) -> None:
    """Write the ``variant`` INT8 model of ``fp32_path`` to ``out_path`` (not atomically).

    ``float_outputs``: the graph's outputs (the logits) stay float: quantizing them to 255
    levels (and clipping them at a calibrated range) ties the top classes of low-confidence
    images, which changes decisions that the layers themselves would have kept.
    """
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
    # The quantizer appends Q/DQ nodes after the graph; ONNX (its checker, TensorRT's parser) wants
    # every node after the producers of its inputs. quantize_static sorts when it saves.
    quantizer.model.topological_sort()
    model = quantizer.model.model
    if float_outputs:
        _unquantize_outputs(model)
    del model.graph.value_info[:]  # shapes inferred for quantization, not part of the artifact
    onnx.save(model, str(out_path))


def _unquantize_outputs(model) -> int:
    """Drop the QuantizeLinear -> DequantizeLinear pair in front of each graph output, so that the
    last layer writes its float result directly (returns how many outputs changed)."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    users: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    dropped = []
    for out in graph.output:
        dq = producers.get(out.name)
        q = producers.get(dq.input[0]) if dq is not None else None
        if dq is None or dq.op_type != "DequantizeLinear" or q is None:
            continue
        if q.op_type != "QuantizeLinear" or users.get(q.output[0]) != 1:
            continue
        src = producers.get(q.input[0])
        if src is None or users.get(q.input[0]) != 1:
            continue
        outputs = list(src.output)
        src.output[outputs.index(q.input[0])] = out.name
        dropped += [q, dq]
    for node in dropped:
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
    return len(dropped) // 2
