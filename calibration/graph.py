"""Which parts of an exported SocketNet graph may be quantized.

The graph starts with the modality encoder, which works on raw sensor units (depth in mm, up to
65535): it must stay in float. Everything from the backbone's first Conv on is the quantizable
region; every node that does not depend on that Conv (the encoder, shape arithmetic) stays float.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from socket_edge.errors import ArtifactError

# Ops whose sensitivity the accuracy gate ranks (the ones holding weights).
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def load_model(path: str | Path, check: bool = True):
    """Load an ONNX model; a corrupt or foreign file fails with a one-line ArtifactError."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise ArtifactError("no such file", path)
    if path.is_dir():
        raise ArtifactError("is a folder, expected an ONNX model (.onnx)", path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"not a valid ONNX model (cannot parse it: {first})", path) from None
    if not model.graph.node:
        raise ArtifactError("not a valid ONNX model (empty graph)", path)
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:
            first = (
                str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            )
            raise ArtifactError(f"not a valid ONNX model ({first})", path) from None
    return model


def name_nodes(model) -> None:
    """Give every unnamed node a unique name (quantizer exclusions and reports use node names)."""
    seen = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)


def inline_constant_identities(model) -> int:
    """Replace ``Identity(initializer)`` nodes by initializers of their own (returns how many).

    The TorchScript exporter shares equal initializers (e.g. identical folded biases) through
    Identity nodes; a Conv whose bias arrives that way is not fused into QLinearConv by ONNX
    Runtime, which made the INT8 CPU model slower than FP32.
    """
    import onnx

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep, added = [], 0
    for node in graph.node:
        if (
            node.op_type == "Identity"
            and node.input
            and node.input[0] in inits
            and node.output[0] not in outputs
        ):
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            added += 1
        else:
            keep.append(node)
    if added:
        del graph.node[:]
        graph.node.extend(keep)
        used = {i for n in graph.node for i in n.input} | outputs
        unused = [t for t in graph.initializer if t.name not in used]
        for t in unused:
            graph.initializer.remove(t)
    return added


@dataclass
class Regions:
    """The float head (encoder) and the quantizable body of a graph, by node and tensor names."""

    first_conv: str
    float_nodes: list[str]  # encoder and shape arithmetic: never quantized
    quant_nodes: list[str]  # the first Conv and everything that depends on it
    weighted_nodes: list[str]  # Conv/Gemm/MatMul of the body, in graph order
    activations: list[str]  # float tensors to calibrate: the first Conv's input + body outputs
    graph_input: str


def regions(model) -> Regions:
    """Split a SocketNet graph at the backbone's first Conv."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if not convs:
        raise ArtifactError("the ONNX graph has no Conv node: not a socket-edge CNN export")
    first = convs[0]
    tainted = {t for t in first.output}
    quant = {first.name}
    for node in graph.node:  # ONNX nodes are topologically sorted
        if node is first:
            continue
        if any(i in tainted for i in node.input if i):
            quant.add(node.name)
            tainted.update(node.output)
    float_types = _float_tensors(model)
    data_inputs = [i for i in first.input[:1] if i and i not in initializers]
    acts: list[str] = list(data_inputs)
    for node in graph.node:
        if node.name in quant:
            acts.extend(o for o in node.output if o and o in float_types and o not in acts)
    return Regions(
        first_conv=first.name,
        float_nodes=[n.name for n in graph.node if n.name not in quant],
        quant_nodes=[n.name for n in graph.node if n.name in quant],
        weighted_nodes=[
            n.name for n in graph.node if n.name in quant and n.op_type in WEIGHTED_OPS
        ],
        activations=acts,
        graph_input=graph.input[0].name,
    )


def _float_tensors(model) -> set[str]:
    """Names of float32 tensors (by shape inference), including graph outputs."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out = set()
    for vi in (
        list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    ):
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            out.add(vi.name)
    return out
