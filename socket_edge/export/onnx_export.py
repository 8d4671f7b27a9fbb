"""Export a SocketNet to ONNX: the whole model, encoder included, with a dynamic batch axis.

The graph takes the raw map a robot has (N x 1 x H x W depth in mm or IR; N x 3 x H x W RGB in
[0, 1]) as "input" and returns "logits". Before export, a copy of the model is made deployable:
the bottleneck's BatchNorm1d is folded into its Linear and the classifier's weight norm is
baked into a plain weight, so the graph holds only inference ops (Conv+BN folding of the
backbone is done by the exporter in eval mode).
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import SocketEdgeError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
# ONNX Runtime's static quantization supports opsets below 21; TensorRT 8.5 parses up to 17.
MAX_OPSET = 20


def deployable(model):
    """An eval-mode CPU copy of ``model`` with BatchNorm1d folded and weight norm removed."""
    import torch
    from torch.nn.utils import parametrize
    from torch.nn.utils.fusion import fuse_linear_bn_eval

    m = copy.deepcopy(model).cpu().eval()
    bottleneck = getattr(m, "bottleneck", None)
    if (
        isinstance(bottleneck, torch.nn.Sequential)
        and len(bottleneck) == 2
        and isinstance(bottleneck[0], torch.nn.Linear)
        and isinstance(bottleneck[1], torch.nn.BatchNorm1d)
    ):
        m.bottleneck = fuse_linear_bn_eval(bottleneck[0], bottleneck[1])
    classifier = getattr(m, "classifier", None)
    if isinstance(classifier, torch.nn.Linear) and parametrize.is_parametrized(
        classifier, "weight"
    ):
        # A new plain Linear: remove_parametrizations would edit the parametrized class, which
        # the original model shares with this copy.
        plain = torch.nn.Linear(
            classifier.in_features, classifier.out_features, bias=classifier.bias is not None
        )
        with torch.no_grad():
            plain.weight.copy_(classifier.weight)
            if classifier.bias is not None:
                plain.bias.copy_(classifier.bias)
        m.classifier = plain.eval()
    return m


def example_input(modality: str, image_size: int, batch: int = 2, seed: int = 0):
    """A plausible raw input: depth 300..5000 mm with missing pixels, IR/RGB in [0, 1]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    channels = 3 if modality == "rgb" else 1
    x = torch.rand(batch, channels, image_size, image_size, generator=g)
    if modality == "depth":
        x = 300.0 + 4700.0 * x
        x[torch.rand(x.shape, generator=g) < 0.05] = 0.0
    return x


def export_onnx(
    model,
    out: str | Path,
    modality: str,
    image_size: int,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (a SocketNet) as ONNX to ``out`` (not atomic: callers pass a temp path)."""
    import onnx
    import torch

    from socket_edge.calibration.graph import inline_constant_identities, name_nodes

    if not 13 <= opset <= MAX_OPSET:
        raise SocketEdgeError(
            f"--opset must be between 13 and {MAX_OPSET} (ONNX Runtime's "
            f"quantizer stops at 20; TensorRT 8.5 reads up to 17), got {opset}"
        )
    m = deployable(model)
    x = example_input(modality, image_size)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        _torch_export(m, x, Path(out), opset)
    proto = onnx.load(str(out))
    inline_constant_identities(proto)
    name_nodes(proto)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = (
            f"socket_edge.{key}",
            value if isinstance(value, str) else json.dumps(value),
        )
    onnx.save(proto, str(out))


def _torch_export(m, x, out: Path, opset: int) -> None:
    import torch

    try:
        # The TorchScript exporter keeps the asked opset exactly and names nodes after modules
        # (/backbone/layer1/layer1.0/conv1/Conv): reports of float-kept layers stay readable.
        torch.onnx.export(
            m,
            (x,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
            dynamo=False,
        )
        return
    except (TypeError, RuntimeError, AttributeError) as exc:
        legacy_error = exc  # a torch without the TorchScript exporter: use torch.export
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(
            m,
            (x,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=max(opset, 18),
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        assert program is not None
        program.save(str(out))
    except Exception as exc:
        raise SocketEdgeError(
            f"torch could not export the model to ONNX ({type(exc).__name__}: {exc}; "
            f"TorchScript exporter: {legacy_error})"
        ) from None
