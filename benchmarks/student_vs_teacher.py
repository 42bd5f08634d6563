"""How much smaller and faster a preset's student is than its teacher, and does its ONNX file keep the logits?
The evaluation stage's own measurement (pipelines/stages/evaluate.py), without training: size and speed do not
depend on the weights.

    OMP_NUM_THREADS=1 nice python benchmarks/student_vs_teacher.py                    # digits, ~1 minute
    OMP_NUM_THREADS=1 nice python benchmarks/student_vs_teacher.py --preset fashion_mnist --seconds 5

Teacher and student are built as the preset builds them, then timed one after the other in this process on the
same test inputs (`TimedInputs`: one sample after a warm-up, median and p95; batch 256), three rounds
interleaved (teacher, student, teacher, ...) with the median of the rounds printed; then each is exported to ONNX
and ONNX Runtime (CPU) is timed on the same single sample, and its largest logit difference to PyTorch printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.device import resolve_device  # noqa: E402
from kdcore.models import count_parameters  # noqa: E402
from pipelines.config.schema import load_config  # noqa: E402
from pipelines.registry.onnx_export import export_example, export_onnx, model_inputs, parity  # noqa: E402
from pipelines.stages.evaluate import TimedInputs  # noqa: E402
from pipelines.tracking.model_timing import device_name, weights_megabytes  # noqa: E402
from pipelines.training.model_run import initial_model  # noqa: E402


def onnx_latency_ms(path: Path, one: torch.Tensor, seconds: float) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: one.numpy()}
    for _ in range(3):
        session.run(None, feed)
    times, deadline = [], time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per model and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cfg = load_config(args.preset, [])
    d = cfg.data
    bundle = load_dataset(d.dataset, d.root, d.val_fraction, d.test_fraction, d.seed, **d.loader_options())
    device = resolve_device(cfg.runtime.device)
    torch.manual_seed(0)
    models = {role: initial_model(getattr(cfg, role), bundle, False)[0].eval() for role in ("teacher", "student")}
    timed = TimedInputs(bundle, device)
    rounds = {role: [] for role in models}
    for _ in range(args.rounds):
        for role, model in models.items():
            rounds[role].append(timed.measure(model.to(device), args.seconds))
    inputs = model_inputs(bundle)
    print(f"{args.preset}: {device_name(device)}, {args.rounds} rounds of {args.seconds:g} s per model")
    print(
        f"{'role':8} {'arch':12} {'params':>10} {'MB':>8} {'ms median':>10} {'ms p95':>8} {'/s @256':>10} "
        f"{'ORT ms':>8} {'ORT diff':>9}"
    )
    row = {}
    for role, model in models.items():
        median = statistics.median(t.latency_ms_median for t in rounds[role])
        p95 = statistics.median(t.latency_ms_p95 for t in rounds[role])
        rate = statistics.median(t.throughput for t in rounds[role])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            export_onnx(model.cpu(), export_example(bundle, inputs), path)
            diff, _ = parity(path, model, inputs)
            ort_ms = onnx_latency_ms(path, inputs[:1], args.seconds)
        size = weights_megabytes(model)
        row[role] = (size, median, rate)
        arch = getattr(cfg, role).arch
        print(
            f"{role:8} {arch:12} {count_parameters(model):>10,} {size:>8.3f} {median:>10.3f} {p95:>8.3f} "
            f"{rate:>10,.0f} {ort_ms:>8.3f} {diff:>9.1e}"
        )
    (ts, tl, tr), (ss, sl, sr) = row["teacher"], row["student"]
    print(
        f"student vs teacher: {ts / ss:.1f}x smaller, {tl / sl:.1f}x faster per sample, {sr / tr:.1f}x the "
        "throughput at batch 256"
    )


if __name__ == "__main__":
    main()
