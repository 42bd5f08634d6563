"""Registered students are self-contained: raw images / strings in, class names and probabilities out, through
`mlflow.pyfunc.load_model`, in a virtual environment without kdflow, and from a real `mlflow models serve`."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from kdcore.data import DataBundle
from kdcore.text.tokenizer import Tokenizer
from pipelines import stages
from pipelines.cache.checkpoint import load_model
from pipelines.config.schema import load_config
from pipelines.registry.predict import PredictError, predict
from pipelines.registry.registration import eight_bit, png_base64
from pipelines.results import TuneResult
from pipelines.tracking.runs import setup_experiment
from tests.loopback_servers import Processes, free_port, wait_http
from tests.test_text_pipeline_e2e import COLUMNS, write_reviews

DIGITS = "models:/kdflow-digits-student@champion"
TEXTS = "models:/kdflow-text_csv-student@champion"


def register_champion(cfg) -> tuple[DataBundle, str]:
    """The real stages on tiny settings: data, a student (labels only, for speed), evaluation, registration."""
    experiment_id = setup_experiment(cfg)
    with mlflow.start_run(experiment_id=experiment_id, run_name="serving") as parent:
        data = stages.prepare_data(cfg)
        student = stages.train_baseline(cfg, data, parent.info.run_id).model_copy(update={"role": "student"})
        ev = stages.evaluate_models(cfg, data, [student], parent.info.run_id)
        untuned = TuneResult(
            study_name="-", storage="-", best_params={}, best_value=None, complete=0, pruned=0, seconds=0
        )
        assert stages.register_student(cfg, data, student, student, untuned, ev).champion  # no search: the student
    return DataBundle.load(data.path), student.checkpoint


@pytest.fixture(scope="module")
def champions(tmp_path_factory):
    """kdflow-digits-student and kdflow-text_csv-student @champion in one SQLite MLflow store."""
    store = tmp_path_factory.mktemp("serving")
    previous = mlflow.get_tracking_uri()
    common = [f"runtime.store_dir={store}", "runtime.device=cpu", "student.train.epochs=2"]
    common.append("evaluate.timing_seconds=0.2")  # the evaluation's timing is not what is tested here
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(store)  # MLflow's default artifact root is ./mlruns: keep it out of the checkout
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        digits = register_champion(load_config("digits", common))
        reviews = write_reviews(store / "reviews.csv")
        columns = [COLUMNS[1], COLUMNS[3]]
        text = register_champion(load_config("text_csv", [*common, f"data.root={reviews}", *columns]))
        yield {"uri": mlflow.get_tracking_uri(), "store": store, "digits": digits, "text": text}
    mlflow.set_tracking_uri(previous)


def expected_probabilities(checkpoint: str, inputs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(load_model(checkpoint)(inputs), dim=1).numpy()


def test_an_image_student_takes_raw_images_and_answers_class_names_and_probabilities(champions):
    bundle, checkpoint = champions["digits"]
    x = bundle.test.x[:24]  # stored digits: 0..16
    expected = expected_probabilities(checkpoint, bundle.view.normalise(x))
    images = eight_bit(x, 16)  # as a user has them: 8-bit pixels (C, H, W)

    model = mlflow.pyfunc.load_model(DIGITS)
    assert model.metadata.metadata["kdflow.classes"] == [str(d) for d in range(10)]
    assert [i.name for i in model.metadata.get_input_schema().inputs] == ["image"]
    assert model.metadata.saved_input_example_info is not None  # base64 PNGs, as `mlflow models serve` takes
    answers = {
        "base64 PNG": model.predict(pd.DataFrame({"image": [png_base64(im) for im in images]})),
        "PNG bytes": model.predict(pd.DataFrame({"image": [base64.b64decode(png_base64(im)) for im in images]})),
        "(N, H, W) batch": model.predict({"image": np.stack(images)[:, 0]}),
        "RGBA PNG": model.predict(pd.DataFrame({"image": [rgba_png(im) for im in images]})),
    }
    names = [str(i) for i in expected.argmax(1)]
    for how, answer in answers.items():
        assert list(answer["class"]) == names, how
        probs = answer[[f"prob_{d}" for d in range(10)]].to_numpy()
        np.testing.assert_allclose(probs, expected, atol=1e-5, err_msg=how)
        np.testing.assert_allclose(answer["probability"], expected.max(1), atol=1e-5, err_msg=how)
    assert (np.array(names) == bundle.test.y[:24].numpy().astype(str)).mean() > 0.5  # it learned something


def rgba_png(chw: np.ndarray) -> bytes:
    """The grey digit as an RGBA file (opaque): the model's grey channel is PIL's RGB -> L of equal channels."""
    grey = chw[0]
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_text_student_takes_raw_strings_and_answers_class_names_and_probabilities(champions):
    bundle, checkpoint = champions["text"]
    texts = ["A great, wonderful movie!", "boring awful waste of a film", "", "zzz unknown words only"]
    tokenizer = Tokenizer.from_state_dict(bundle.tokenizer)
    expected = expected_probabilities(checkpoint, tokenizer.encode(texts)[0])

    answer = mlflow.pyfunc.load_model(TEXTS).predict(texts)
    assert list(answer["class"]) == [bundle.classes[i] for i in expected.argmax(1)]
    np.testing.assert_allclose(answer[[f"prob_{c}" for c in bundle.classes]].to_numpy(), expected, atol=1e-5)


# A venv that sees the installed packages (torch, torchvision, mlflow...) but not kdflow. kdflow is an editable
# install: site-packages holds __editable__.kdflow-*.pth, which (when `site` runs) installs a meta-path finder
# mapping kdcore / pipelines / flows to the source tree. `python -I` keeps PYTHONPATH, the user site and the
# working directory off sys.path; the first lines of the script remove that finder before anything is imported,
# so the only kdcore left is the copy MLflow packaged with the model (code_paths). The script checks this.
NO_KDFLOW = """
import importlib.util, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", type(f).__module__)]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path[:] = [p for p in sys.path if "__editable__" not in p and not p.startswith(sys.argv[3])]
assert all(importlib.util.find_spec(m) is None for m in ("kdcore", "pipelines", "flows")), "kdflow is importable"
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
answer = mlflow.pyfunc.load_model(sys.argv[2]).predict(pd.DataFrame({"image": json.loads(sys.stdin.read())}))
print(json.dumps({"classes": list(answer["class"]), "kdcore": sys.modules["kdcore"].__file__}))
"""


@pytest.fixture(scope="session")
def venv_without_kdflow(tmp_path_factory) -> Path:
    """Built once per session from the packages already installed: no pip, no download (about a second)."""
    root = tmp_path_factory.mktemp("venv-no-kdflow")
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root)
    return root / "bin" / "python"


def test_the_registered_image_student_loads_where_kdflow_is_not_installed(champions, venv_without_kdflow, tmp_path):
    bundle, _ = champions["digits"]
    images = [png_base64(im) for im in eight_bit(bundle.test.x[:8], 16)]
    in_process = list(mlflow.pyfunc.load_model(DIGITS).predict(pd.DataFrame({"image": images}))["class"])
    repo = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [str(venv_without_kdflow), "-I", "-c", NO_KDFLOW, champions["uri"], DIGITS, repo],
        input=json.dumps(images),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["classes"] == in_process
    assert "/artifacts/code/kdcore/" in out["kdcore"] and "/work/main/" not in out["kdcore"]  # the model's copy


def test_mlflow_models_serve_answers_a_png_with_its_class_name(champions, tmp_path):
    bundle, checkpoint = champions["digits"]
    image = eight_bit(bundle.test.x[:1], 16)[0]
    expected = str(expected_probabilities(checkpoint, bundle.view.normalise(bundle.test.x[:1])).argmax())
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": champions["uri"]}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", DIGITS, "--env-manager", "local"]
    processes = Processes(tmp_path / "logs")
    try:
        server = processes.start("serve", [*cmd, "-p", str(port), "-h", "127.0.0.1", "-w", "1"], env, cwd=tmp_path)
        wait_http(f"http://127.0.0.1:{port}/ping", server, server.log, timeout=180)
        body = json.dumps({"dataframe_records": [{"image": png_base64(image)}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["predictions"][0]
    finally:
        processes.stop_all()
    assert answer["class"] == expected
    assert set(answer) == {"class", "probability", *(f"prob_{d}" for d in range(10))}
    assert abs(sum(answer[f"prob_{d}"] for d in range(10)) - 1) < 1e-4


def write_digit_folder(folder: Path, images: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, im in enumerate(images):
        paths.append(folder / f"{i:03d}.png")
        paths[-1].write_bytes(base64.b64decode(png_base64(im)))
    (folder / "050.png").write_bytes(b"not a png at all")  # one unreadable file among them
    (folder / "notes.md").write_text("not an image: ignored")
    return paths


def test_predict_scores_a_folder_in_chunks_and_lists_the_unreadable_file(champions, tmp_path):
    bundle, checkpoint = champions["digits"]
    x = bundle.test.x[:7]
    expected = expected_probabilities(checkpoint, bundle.view.normalise(x))
    paths = write_digit_folder(tmp_path / "digits", eight_bit(x, 16))
    out = tmp_path / "out" / "preds.csv"
    progress = []

    report = predict(
        DIGITS, [tmp_path / "digits"], out, probs=True, chunk_size=3, on_progress=lambda *a: progress.append(a)
    )

    assert report.predicted == 7 and [name for name, _ in report.skipped] == [str(tmp_path / "digits" / "050.png")]
    rows = pd.read_csv(out, dtype={"class": str})
    assert list(rows["input"]) == [str(p) for p in paths]
    assert list(rows["class"]) == [str(i) for i in expected.argmax(1)]
    np.testing.assert_allclose(rows[[f"prob_{d}" for d in range(10)]].to_numpy(), expected, atol=1e-5)
    assert progress == [(3, 8), (6, 8), (8, 8)]  # 8 files, 7 predicted + 1 skipped, 3 at a time
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.csv"]  # no temporary file left

    strict = tmp_path / "strict.csv"
    with pytest.raises(PredictError, match="050.png cannot be used as an image"):
        predict(DIGITS, [tmp_path / "digits"], strict, strict=True)
    assert not strict.exists() and not list(tmp_path.glob(".strict.csv*"))  # nothing half-written


def test_predict_reads_texts_from_csv_and_jsonl_rows(champions, tmp_path):
    table = tmp_path / "reviews.csv"
    table.write_text("id,text\n1,a great wonderful film\n2,boring awful waste\n")
    lines = tmp_path / "more.jsonl"
    lines.write_text('{"text": "superb and moving"}\n{"review": "no text field"}\n')
    out = tmp_path / "preds.csv"

    report = predict(TEXTS, [table, lines], out)

    assert report.predicted == 3 and [name for name, _ in report.skipped] == [f"{lines}:2"]
    rows = pd.read_csv(out)
    assert list(rows["input"]) == [f"{table}:1", f"{table}:2", f"{lines}:1"]
    assert list(rows.columns) == ["input", "class", "probability"] and set(rows["class"]) <= {"neg", "pos"}


def test_predict_names_each_bad_input_in_one_sentence_and_writes_nothing(champions, tmp_path):
    bundle, _ = champions["digits"]
    write_digit_folder(tmp_path / "digits", eight_bit(bundle.test.x[:1], 16))
    (tmp_path / "empty").mkdir()
    texts = tmp_path / "t.csv"
    texts.write_text("text\nhello\n")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    cases = {
        "no registered model kdflow-nope-student": ("models:/kdflow-nope-student@champion", [tmp_path / "digits"]),
        "has no alias @staging": ("models:/kdflow-digits-student@staging", [tmp_path / "digits"]),
        "has no version 99": ("models:/kdflow-digits-student/99", [tmp_path / "digits"]),
        "holds texts but .* is an image classifier": (DIGITS, [texts]),
        "holds images but .* is a text classifier": (TEXTS, [tmp_path / "digits"]),
        "folder .*empty holds no images": (DIGITS, [tmp_path / "empty"]),
        "missing.png does not exist": (DIGITS, [tmp_path / "missing.png"]),
        "no input could be predicted: .*broken.png cannot be used as an image": (DIGITS, [broken]),
    }
    for message, (model, inputs) in cases.items():
        with pytest.raises(PredictError, match=message) as caught:
            predict(model, inputs, tmp_path / "out.csv")
        assert "\n" not in str(caught.value)
        assert not list(tmp_path.glob("*out.csv*")), message


def test_a_model_registered_before_raw_inputs_still_loads_and_predict_says_what_it_is(champions, tmp_path):
    """Versions logged as bare mlflow.pytorch models (before this change) keep loading as they did."""
    net = torch.nn.Linear(4, 2)
    mlflow.set_experiment("old-models")
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(net, name="model", input_example=np.zeros((1, 4), dtype=np.float32))
    version = mlflow.register_model(info.model_uri, "kdflow-old-student")
    old = f"models:/kdflow-old-student/{version.version}"
    assert mlflow.pytorch.load_model(old)(torch.ones(1, 4)).shape == (1, 2)
    bundle, _ = champions["digits"]
    write_digit_folder(tmp_path / "digits", eight_bit(bundle.test.x[:1], 16))
    with pytest.raises(PredictError, match="takes tensors, not files"):
        predict(old, [tmp_path / "digits"], tmp_path / "out.csv")


def test_kdflow_predict_command_uses_the_presets_champion_and_reports_skipped_files(champions, tmp_path, capsys):
    from flows.cli import main

    bundle, _ = champions["digits"]
    write_digit_folder(tmp_path / "digits", eight_bit(bundle.test.x[:4], 16))
    out = tmp_path / "preds.csv"
    store = ["--store-dir", str(champions["store"])]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        code = main(["predict", "--preset", "digits", str(tmp_path / "digits"), "--output", str(out), *store])
        err = capsys.readouterr().err
        assert code == 0 and len(pd.read_csv(out)) == 4
        assert f"skipped {tmp_path / 'digits' / '050.png'}" in err and "4 predictions written" in err
        assert main(["predict", "models:/kdflow-nope-student@champion", str(tmp_path / "digits"), *store]) == 1
        assert capsys.readouterr().err.startswith("kdflow predict: ")


def test_the_logged_serving_example_is_answered_as_mlflow_models_serve_would(champions):
    """`{"inputs": {"image": [...]}}`, the payload MLflow writes as the model's serving example: one class per image."""
    import json

    from mlflow.models import validate_serving_input

    path = mlflow.artifacts.download_artifacts(DIGITS)
    example = (Path(path) / "serving_input_example.json").read_text()
    answer = validate_serving_input(DIGITS, example)
    assert len(answer) == len(json.loads(example)["inputs"]["image"]) == 2
    assert set(answer["class"]) <= {str(d) for d in range(10)}
