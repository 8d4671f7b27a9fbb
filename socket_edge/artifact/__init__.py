"""Exported artifacts and their JSON sidecars: the schema, reading, writing and verification.

``model.onnx`` -> ``model.json``; ``model.int8.onnx`` -> ``model.int8.json``; an engine
``model.fp16.engine`` -> ``model.fp16.engine.json`` (engines keep their suffix in the sidecar name
so that an engine never overwrites the sidecar of the ONNX model it was built from).

Schema (format_version 1)::

    format, format_version, artifact (file name), kind (onnx | engine | calibration-cache),
    sha256 (of the artifact), precision (fp32 | fp16 | int8-qdq | int8-cpu | int8), arch,
    classes, modality, input {name, shape, dtype, layout, units}, output {name, shape},
    preprocess {image_size, interpolation, resize}, encoding {...}, encoding_in_graph (bool),
    source {path, sha256} (the checkpoint), calibration {...} | null, parity {...} | null,
    tensorrt {...} | null (engines), versions {...}, created, export {opset, batch} (optional),
    reference {...} (optional: monitoring statistics, socket_edge.monitor.reference; engines
    inherit the ONNX model's)

Filled in by ``socket-edge export``:

- parity: max_abs_logit_diff, top1_agreement, n, batch_sizes, max_abs_logit, atol, rtol,
  tolerance, images (which), passed.
- calibration (INT8 artifacts and model.calib.cache.json): stamp (sha256 of model + calibration
  set + method, 16 hex digits), method, model_sha256 (of the FP32 ONNX), fp32_artifact,
  set {folder, size, requested, seed, holdout, sha256}, activations, float_nodes {encoder, gate},
  gate {...}, cache; the cache's sidecar adds header and ranges {tensor: [lo, hi]}.
- tensorrt (engines): version, compute_capability, gpu, fp16, int8, int8_mode, profile
  {min, opt, max}, dla, workspace_mib, timing_cache, float_layers, built_from, build_seconds.

Verification (every reader: eval, bench, export --trt, the runners, the Python API) checks that
the artifact is the file its sidecar describes (sha256; the digest is cached by path, size, mtime
and inode, in memory and in ``$SOCKET_EDGE_CACHE_DIR/digests.json``), that an ONNX model's
embedded metadata (classes, modality, encoding) agrees with the sidecar, that its external data
stays inside its folder, and that an INT8 model or an engine was made from the FP32 model (or the
ONNX model) it sits beside. ``verify=False`` (``--no-verify``) skips all but the sidecar's schema.
Verification only reads: an artifact of a killed export's half-moved set is refused (the export's
next run finishes it; socket_edge.outputs).

The package: ``sidecar`` (the schema, ``ArtifactInfo``, writing, reading, the hash check),
``verify`` (``verify_artifact``, ``artifact_info``: what every reader runs), ``onnx_files`` (the
external-data check of untrusted ONNX files). Import its names from here.
"""

from ..files import clear_digest_cache, digest
from .onnx_files import check_external_data
from .sidecar import (
    FORMAT,
    FORMAT_VERSION,
    ArtifactInfo,
    check_hash,
    dump_sidecar,
    make_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from .verify import (
    artifact_info,
    check_lineage,
    check_metadata,
    onnx_metadata,
    verify_artifact,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArtifactInfo",
    "artifact_info",
    "check_external_data",
    "check_hash",
    "check_lineage",
    "check_metadata",
    "clear_digest_cache",
    "digest",
    "dump_sidecar",
    "make_sidecar",
    "onnx_metadata",
    "read_sidecar",
    "sidecar_path",
    "verify_artifact",
    "write_sidecar",
]
