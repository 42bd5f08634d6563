"""The teacher-logits stage: teacher outputs computed once, keyed by data, teacher weights and K, shared after.

Plain data caches one row of logits per sample; augmented data with distill.teacher_views = K caches K
consistent views. A hit must not run the teacher; new weights (even at the same path), other data or
another K must miss.
"""

import os
from contextlib import contextmanager

import pytest
import torch

from kdcore.data import DataBundle
from kdcore.models import build_model
from kdcore.teacher_views import TeacherViews
from pipelines.cache.checkpoint import load_model, save_model
from pipelines.config.schema import load_config
from pipelines.results import TrainedModel
from pipelines.stages import compute_teacher_logits, prepare_data
from pipelines.teachers.teacher_targets import teacher_targets


def config(store, *overrides):
    return load_config("digits", [f"runtime.store_dir={store}", "runtime.device=cpu", *overrides])


def teacher_at(path, data, seed=0) -> TrainedModel:
    """A small untrained teacher written to `path`: the stage only needs its checkpoint."""
    torch.manual_seed(seed)
    model = build_model("cnn_small", tuple(data.input_shape), data.num_classes, width=4)
    save_model(model, "cnn_small", data.input_shape, data.num_classes, {"width": 4}, path)
    return TrainedModel(
        role="teacher", arch="cnn_small", checkpoint=str(path), run_id="run-1", parameters=0, val_acc=0.0, seconds=0.0
    )


@contextmanager
def counting_forwards():
    """Counts forward calls of every module in the process: a cache hit must not run the teacher."""
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def stamp(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


@pytest.mark.parametrize("augment, k", [("none", 0), ("crop_flip", 2)], ids=["logits", "views"])
def test_teacher_outputs_are_computed_once_and_invalidated_by_teacher_data_and_k(tmp_path, augment, k):
    cfg = config(tmp_path, f"data.augment={augment}", f"distill.teacher_views={k}")
    data = prepare_data(cfg)
    teacher = teacher_at(tmp_path / "teacher.pt", data)
    first = compute_teacher_logits(cfg, data, teacher)
    assert first and os.path.exists(first)
    before = stamp(first)

    with counting_forwards() as calls:
        again = compute_teacher_logits(cfg, data, teacher)
    assert again == first and stamp(first) == before and not calls  # a hit: same file, teacher not run

    resaved = teacher_at(tmp_path / "copy.pt", data)  # the same weights in another file (other bytes)
    assert compute_teacher_logits(cfg, data, resaved) == first
    retrained = teacher_at(tmp_path / "teacher.pt", data, seed=1)  # new weights at the same path, same run id
    assert compute_teacher_logits(cfg, data, retrained) not in ("", first)

    other_cfg = config(tmp_path, f"data.augment={augment}", f"distill.teacher_views={k}", "data.seed=1")
    other_data = prepare_data(other_cfg)
    assert other_data.digest != data.digest
    assert compute_teacher_logits(other_cfg, other_data, teacher_at(tmp_path / "teacher.pt", data)) not in ("", first)

    if k:  # another K: another file, holding K views
        more = config(tmp_path, f"data.augment={augment}", "distill.teacher_views=3")
        path = compute_teacher_logits(more, data, teacher_at(tmp_path / "teacher.pt", data))
        assert path not in ("", first) and TeacherViews.load(path).k == 3
    assert stamp(first) == before  # untouched by the misses


def test_soft_targets_come_from_the_source_the_data_and_k_call_for(tmp_path):
    plain = config(tmp_path, "data.augment=none", "distill.teacher_views=4")  # K ignored: nothing to replay
    data = prepare_data(plain)
    teacher = teacher_at(tmp_path / "teacher.pt", data)
    targets = teacher_targets(
        DataBundle.load(data.path), teacher.checkpoint, compute_teacher_logits(plain, data, teacher)
    )
    assert targets.kind == "cached logits" and targets.logits.shape == (data.sizes["train"], data.num_classes)

    online = config(tmp_path, "data.augment=crop_flip")
    data = prepare_data(online)
    assert compute_teacher_logits(online, data, teacher) == ""
    assert teacher_targets(DataBundle.load(data.path), teacher.checkpoint, "").kind == "online teacher"

    cached = config(tmp_path, "data.augment=crop_flip", "distill.teacher_views=4")
    path = compute_teacher_logits(cached, data, teacher)
    bundle = DataBundle.load(data.path)
    targets = teacher_targets(bundle, teacher.checkpoint, path)
    assert targets.kind == "cached views" and targets.teacher is None  # logit methods need no teacher at all
    views = targets.views
    assert views.k == 4 and len(views) == data.sizes["train"] and views.view == bundle.view
    model = load_model(teacher.checkpoint)
    with torch.no_grad():  # what the stage stored is the teacher on the view the stored draws describe
        assert torch.allclose(
            model(bundle.view.apply(bundle.train.x[:5], views.params[3, :5])), views.logits[3, :5], atol=1e-5
        )
    assert teacher_targets(bundle, teacher.checkpoint, path, need_model=True).teacher is not None  # feature methods
