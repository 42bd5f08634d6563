"""End to end on text: `kdflow run --preset text_csv` on a CSV written here; the registered student scores
raw strings."""

import csv
import random

import mlflow
import torch
from mlflow.tracking import MlflowClient
from mlflow.types import DataType

from kdcore.models import build_model
from kdcore.text.tokenizer import Tokenizer
from tests.conftest import TINY

POSITIVE = "great wonderful superb moving brilliant loved enjoyable delightful".split()
NEGATIVE = "awful boring terrible dull waste hated clumsy tedious".split()
FILLER = "the movie film plot actors story scenes was and a it this of with".split()
COLUMNS = ["--set", "data.text.text_column=review", "--set", "data.text.label_column=sentiment"]


def write_reviews(path, n=160, seed=0, bad_row=None):
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "sentiment"])
        for i in range(n):
            label = "pos" if i % 2 else "neg"
            words = rng.sample(FILLER, 6) + rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2)
            rng.shuffle(words)
            w.writerow([i, " ".join(words).capitalize() + "!", label])
            if bad_row == i:
                w.writerow([i, "", label])
    return path


def test_text_csv_pipeline_registers_a_student_that_reads_raw_strings(kdflow, tmp_path):
    data = write_reviews(tmp_path / "reviews.csv")
    proc, summary = kdflow("run", "--preset", "text_csv", "--set", f"data.root={data}", *COLUMNS, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["models"]["teacher"]["arch"] == "bilstm" and summary["models"]["student"]["arch"] == "fasttext"
    assert summary["models"]["student"]["parameters"] * 5 <= summary["models"]["teacher"]["parameters"]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    ml = summary["mlflow"]
    assert client.get_experiment(ml["experiment_id"]).name == "kdflow-text_csv"
    children = {
        r.info.run_name: r
        for r in client.search_runs(
            [ml["experiment_id"]], f"tags.mlflow.parentRunId = '{ml['parent_run_id']}'", max_results=100
        )
    }
    assert {"teacher", "baseline", "student", "evaluation", "trial-0", "trial-1", "trial-2"} <= set(children)
    for role in ("teacher", "baseline", "student"):
        run = children[role]
        assert run.data.params["data.dataset"] == "text_csv" and run.data.params["data.text.text_column"] == "review"
        assert int(run.data.params["model.parameters"]) == summary["models"][role]["parameters"]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [1, 2, 3]
    assert children["evaluation"].data.metrics["test/student_acc"] == summary["models"]["student"]["test_acc"]

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    name = ml["registered_model"]
    assert name == "kdflow-text_csv-student"
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    inputs = model.metadata.get_input_schema().inputs
    assert [i.type for i in inputs] == [DataType.string]
    texts = ["A great, wonderful movie!", "boring awful waste of a film", "", "zzz unknown words only"]
    answer = model.predict(texts)
    predicted = list(answer["class"])
    assert len(predicted) == 4 and set(predicted) <= {"neg", "pos"}
    assert (answer["prob_neg"] + answer["prob_pos"]).round(5).eq(1).all()  # every class's probability

    # The same predictions, computed here from the registered version's checkpoint artifact.
    version = client.get_model_version_by_alias(name, "champion")
    path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=version.tags["kdflow.checkpoint"])
    blob = torch.load(path, map_location="cpu", weights_only=True)
    spec, tokenizer = blob["spec"], Tokenizer.from_state_dict(blob["tokenizer"])
    net = build_model(spec["arch"], tuple(spec["input_shape"]), spec["num_classes"], **spec["options"])
    net.load_state_dict(blob["state_dict"])
    with torch.no_grad():
        expected = net.eval()(tokenizer.encode(texts)[0]).argmax(1).tolist()
    assert predicted == [["neg", "pos"][i] for i in expected]
    assert spec["options"]["vocab_size"] == len(tokenizer)


def test_a_bad_record_stops_the_run_with_its_file_and_line(kdflow, tmp_path):
    data = write_reviews(tmp_path / "reviews.csv", n=40, bad_row=4)  # the empty review is on line 7
    proc, summary = kdflow("run", "--preset", "text_csv", "--set", f"data.root={data}", *COLUMNS, *TINY)
    assert proc.returncode == 1 and summary is None
    errors = [line for line in proc.stderr.splitlines() if line.startswith("kdflow:")]
    assert errors == [
        (
            f"kdflow: data error: {data}:7: empty text; fix or remove that record, "
            "or set data.strict=false to skip bad records"
        )
    ]
    assert not list((tmp_path / "mlruns" / "cache" / "data").glob("*.pt"))  # nothing half-prepared
