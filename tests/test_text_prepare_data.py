"""prepare_data on a text file: cached by config and by the file's content, vocabulary kept in the bundle."""

from kdcore.data import DataBundle
from pipelines.config.schema import load_config
from pipelines.stages.prepare_data import prepare_data
from tests.test_text_pipeline_e2e import write_reviews


def test_prepared_text_is_reused_until_the_file_changes(tmp_path):
    data = write_reviews(tmp_path / "reviews.csv", n=40)
    overrides = [
        f"data.root={data}",
        "data.text.text_column=review",
        "data.text.label_column=sentiment",
        f"runtime.store_dir={tmp_path / 'store'}",
    ]
    first = prepare_data(load_config("text_csv", overrides))
    assert prepare_data(load_config("text_csv", overrides)).path == first.path
    bundle = DataBundle.load(first.path)
    assert bundle.tokenizer["tokens"][:2] == ["<pad>", "<unk>"] and first.input_shape == [bundle.train.x.shape[1]]
    write_reviews(data, n=60)  # the user edits the file: it is read again
    second = prepare_data(load_config("text_csv", overrides))
    assert second.path != first.path and sum(second.sizes.values()) == 60
