"""teacher.arch=hf: a Hugging Face classifier with its own tokenizer, fine-tuned on the raw texts and distilled
into kdflow's fasttext through `kdflow run --preset text_csv`; the one-sentence errors before any work.

No network here: the "pretrained" model is a tiny randomly initialised BERT whose WordPiece tokenizer is trained
on the test's own texts with the `tokenizers` library, both saved with save_pretrained into a folder.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from kdcore.data import DataBundle  # noqa: E402
from pipelines.cache.checkpoint import load_model, read_spec  # noqa: E402
from pipelines.config.schema import ConfigError, load_config  # noqa: E402
from pipelines.teachers.pretrained import check_pretrained  # noqa: E402
from tests.test_text_pipeline_e2e import COLUMNS, FILLER, NEGATIVE, POSITIVE, write_reviews  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert(folder, with_tokenizer=True, num_labels=5):
    """A 2-layer BERT (hidden 32) with a 5-class head, and its WordPiece tokenizer, saved as a pretrained folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = POSITIVE + NEGATIVE + FILLER
    tok.train_from_iterator([" ".join(words)] * 3, trainers.WordPieceTrainer(vocab_size=120, special_tokens=SPECIAL))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )  # fmt: skip
    config = transformers.BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels, pad_token_id=tok.token_to_id("[PAD]"),
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(folder)
    if with_tokenizer:
        tokenizer.save_pretrained(folder)
    return model.state_dict(), tokenizer


def hf_settings(folder, data):
    return [
        *("--set", f"data.root={data}", "--set", "teacher.arch=hf", "--set", f"teacher.pretrained={folder}"),
        *("--set", "teacher.width=null", "--set", "data.download=false", *COLUMNS),
    ]


def test_a_local_hf_model_is_fine_tuned_and_distilled_into_fasttext(tmp_path, kdflow):
    saved, tokenizer = tiny_bert(tmp_path / "tiny-bert")
    data = write_reviews(tmp_path / "reviews.csv", n=80)
    proc, summary = kdflow(
        "run", "--preset", "text_csv", *hf_settings(tmp_path / "tiny-bert", data),
        *("--set", "teacher.train.epochs=2", "--set", "teacher.train.lr=0.0005", "--set", "student.train.epochs=2"),
        *("--set", "tune.n_trials=1", "--set", "tune.epochs=1", "--set", "runtime.device=cpu"),
        *("--set", "evaluate.timing_seconds=0.2"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["models"]["teacher"]["arch"] == "hf" and summary["models"]["student"]["arch"] == "fasttext"

    [checkpoint] = (tmp_path / "mlruns" / "cache" / "teacher").glob("*.pt")
    assert read_spec(checkpoint)["num_classes"] == 2
    teacher = load_model(checkpoint)  # rebuilt from the config JSON in the checkpoint alone
    state = teacher.state_dict()
    assert state["model.classifier.weight"].shape == (2, 32)  # the 5-class head was replaced
    start = saved["bert.encoder.layer.0.attention.self.query.weight"]
    tuned = state["model.bert.encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(tuned, start) and torch.allclose(tuned, start, atol=0.05)  # fine-tuned from the weights

    # The cached soft targets are the teacher's logits on the raw train texts in its own tokenizer, row by row.
    [bundle_file] = (tmp_path / "mlruns" / "cache" / "data").glob("*.pt")
    train = DataBundle.load(bundle_file).train
    [logits_file] = (tmp_path / "mlruns" / "cache" / "logits").glob("*.pt")
    cached = torch.load(logits_file, weights_only=True)
    assert cached.shape == (len(train), 2)
    for i in (0, len(train) - 1):
        ids = torch.tensor([tokenizer(train.texts[i])["input_ids"]])
        with torch.no_grad():
            assert torch.allclose(teacher(ids)[0], cached[i], atol=1e-4)

    # The registered student reads raw strings with kdflow's tokenizer and needs no transformers.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    uri = f"models:/{summary['mlflow']['registered_model']}@champion"
    requirements = mlflow.pyfunc.get_model_dependencies(uri)
    assert "transformers" not in open(requirements).read()
    answer = mlflow.pyfunc.load_model(uri).predict(["a great wonderful film", "boring awful waste"])
    assert set(answer["class"]) <= {"neg", "pos"}


def test_bad_hf_inputs_are_one_sentence_before_any_training(tmp_path):
    data = write_reviews(tmp_path / "reviews.csv", n=20)

    def config(*overrides):
        return load_config("text_csv", [f"data.root={data}", "data.download=false", *overrides])

    with pytest.raises(ConfigError, match="bilstm has no pretrained weights; for texts set teacher.arch=hf"):
        config("teacher.pretrained=bert-base-uncased")
    with pytest.raises(ConfigError, match="teacher.arch=hf needs teacher.pretrained"):
        config("teacher.arch=hf", "teacher.width=null")
    with pytest.raises(ConfigError, match="student.arch=hf: a Hugging Face model is a teacher only"):
        config("student.arch=hf", "student.width=null")

    tiny_bert(tmp_path / "no-tokenizer", with_tokenizer=False)
    with pytest.raises(ConfigError, match="no-tokenizer holds no tokenizer .*tokenizer.save_pretrained"):
        check_pretrained(config("teacher.arch=hf", "teacher.width=null", f"teacher.pretrained={tmp_path}/no-tokenizer"))
    tiny_bert(tmp_path / "tiny-bert")
    with pytest.raises(ConfigError, match="read the teacher's features.* choose kd, dkd or dist"):
        check_pretrained(
            config(
                "teacher.arch=hf",
                "teacher.width=null",
                f"teacher.pretrained={tmp_path}/tiny-bert",
                "distill.method=rkd",
            )
        )


def test_a_missing_model_offline_is_one_sentence_naming_it_and_the_cache(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("PREFECT_LOGGING_LEVEL", "MLFLOW_LOGGING_LEVEL"):  # `run` sets them by default: undo afterwards
        monkeypatch.setenv(name, "WARNING")
    data = write_reviews(tmp_path / "reviews.csv", n=20)
    args = ["run", "--preset", "text_csv", "--set", f"data.root={data}", *COLUMNS]
    code = main(
        [*args, *("--set", "teacher.arch=hf", "--set", "teacher.width=null")]
        + ["--set", "teacher.pretrained=kdflow-test/absent-model", "--set", "data.download=false"]
    )
    message = capsys.readouterr().err.strip()
    assert code != 0
    assert len(message.splitlines()) == 1, message
    assert "kdflow-test/absent-model" in message and str(tmp_path / "empty-hf-home") in message
    assert "data.download=false" in message and "save_pretrained" in message
    assert not list(tmp_path.glob("mlruns/*"))  # no data cache, no MLflow run: nothing was started
