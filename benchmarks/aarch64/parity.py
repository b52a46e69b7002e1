"""x86_64 vs aarch64 parity of the int8 model, used by benchmarks/aarch64/run.sh.

  python parity.py dump OUT.npz            (host) quantised input of every demo-clip window
  python parity.py score IN.npz            (either) raw int8 outputs on those exact inputs with
                                           LiteRT's reference kernels and its default (XNNPACK)
  python parity.py compare A.json B.json MODEL_CARD [--classify HOST.jsonl ARM.jsonl]

Feeding both machines the same int8 tensors separates the model's arithmetic from the float
front end: both the reference and the default (XNNPACK) kernels must agree bit for bit.
"""

from __future__ import annotations

import glob
import json
import sys


def dump(out: str) -> None:
    import numpy as np

    from edge_runtime.audio import load_audio, split_windows
    from edge_runtime.frontend import Frontend
    from edge_runtime.model import SpoofModel

    model = SpoofModel()
    frontend = Frontend(model.frontend_config)
    config = frontend.config
    inputs = {}
    for path in sorted(glob.glob("samples/*.flac")):
        windows = split_windows(load_audio(path), config.window_samples,
                                config.window_samples // 2)
        for index, window in enumerate(windows):
            features = frontend.window_features(window)
            inputs[f"{path}#{index}"] = model.input_quantization.quantize(features)
    np.savez(out, **inputs)


def score(npz: str) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edge_runtime.model import default_model_path

    inputs = np.load(npz)
    result = {}
    for kind in ("BUILTIN_REF", "AUTO"):
        interpreter = Interpreter(model_path=str(default_model_path()),
                                  experimental_op_resolver_type=getattr(OpResolverType, kind))
        interpreter.allocate_tensors()
        input_index = interpreter.get_input_details()[0]["index"]
        output_index = interpreter.get_output_details()[0]["index"]
        raws = {}
        for name in sorted(inputs.files):
            interpreter.set_tensor(input_index, inputs[name][None, :, :, None])
            interpreter.invoke()
            raws[name] = int(interpreter.get_tensor(output_index).reshape(-1)[0])
        result[kind] = raws
    print(json.dumps(result))


# Kernels must agree bit for bit on the same int8 inputs; `classify` runs the float front end on
# each machine, and an input value rounded across a quantisation step moves a deeper model's
# output by more than one step (measured: 2 steps on one demo clip with the four-block
# detector v2.2; identical scores with the three-block v2).
CLASSIFY_STEPS = 4


def compare(host_json: str, arm_json: str, card_json: str, classify: list[str]) -> int:
    host = json.load(open(host_json))
    arm = json.load(open(arm_json))
    failed = False
    for kind, label in (("BUILTIN_REF", "reference kernels"), ("AUTO", "default kernels")):
        diffs = {name: arm[kind][name] - host[kind][name] for name in host[kind]}
        worst = max(abs(d) for d in diffs.values())
        changed = sum(d != 0 for d in diffs.values())
        print(f"aarch64: same int8 inputs, {label}: {changed}/{len(diffs)} windows differ, "
              f"by at most {worst} output step(s)", file=sys.stderr)
        failed |= worst != 0
    if classify:
        quantum = json.load(open(card_json))["output"]["scale"]
        host_rows = [json.loads(line) for line in open(classify[0])]
        arm_rows = [json.loads(line) for line in open(classify[1])]
        worst = 0.0
        for h, a in zip(host_rows, arm_rows, strict=True):
            worst = max(worst, abs(h["score"] - a["score"]))
            print(f"  {h['path']}\tx86_64 {h['score']:.6f}\taarch64 {a['score']:.6f}\t"
                  f"{h['label']}/{a['label']}", file=sys.stderr)
            failed |= h["label"] != a["label"] or h["path"] != a["path"]
        identical = sum(h["score"] == a["score"] for h, a in zip(host_rows, arm_rows, strict=True))
        print(f"aarch64: classify: {identical}/{len(host_rows)} clip scores identical, largest "
              f"difference {worst / quantum:.2f} output steps ({worst:.6f}); labels "
              f"{'identical' if not failed else 'DIFFER'}", file=sys.stderr)
        failed |= worst > quantum * CLASSIFY_STEPS * 1.0001
    return 1 if failed else 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "dump":
        dump(sys.argv[2])
    elif command == "score":
        score(sys.argv[2])
    elif command == "compare":
        extra = sys.argv[6:8] if len(sys.argv) >= 8 and sys.argv[5] == "--classify" else []
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4], extra))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
