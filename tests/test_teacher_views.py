"""Consistent teacher views: the student is fed exactly the views whose teacher logits were stored."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data import InputView, Split
from kdcore.distill import Distiller
from kdcore.soft_targets import SoftTargets
from kdcore.teacher_views import TeacherViews
from kdcore.train import TrainSettings, fit

VIEW = InputView(mean=(0.5,) * 3, std=(0.25,) * 3, scale=1 / 255, crop_padding=2, flip=True)


def images(n=16, c=3, h=8, w=8):
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(n), dtype=torch.uint8)


def teacher_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3), nn.Dropout(0.5))  # dropout: eval mode matters


class RecordBatches(Distiller):
    """Plain CE; remembers each batch's index, inputs and soft targets."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def loss_terms(self, student_logits, batch):
        self.seen.append((batch.index.clone(), batch.x.clone(), batch.teacher_logits.clone()))
        return {"ce": F.cross_entropy(student_logits, batch.y)}


def test_stored_logits_are_the_teacher_on_the_view_their_params_describe():
    x, teacher = images(), teacher_model()
    views = TeacherViews.build(teacher, x, VIEW, k=3, seed=5, batch_size=5)  # batches cut across samples
    assert views.logits.shape == (3, 16, 3) and views.params.dy.shape == (3, 16) and teacher.training
    with torch.no_grad():
        teacher.eval()
        for k in range(3):
            for i in (0, 7, 15):
                assert torch.allclose(
                    teacher(VIEW.apply(x[i : i + 1], views.params[k, i : i + 1]))[0], views.logits[k, i], atol=1e-6
                )
    assert not torch.allclose(views.logits[0], views.logits[1])  # K different views, not one view K times
    again = TeacherViews.build(teacher, x, VIEW, k=3, seed=5)
    assert torch.equal(again.params.dy, views.params.dy) and torch.allclose(again.logits, views.logits, atol=1e-6)
    assert not torch.equal(TeacherViews.build(teacher, x, VIEW, k=3, seed=6).params.dx, views.params.dx)


def test_fit_replays_exactly_the_cached_views_and_their_logits():
    x, y, teacher = images(), torch.arange(16) % 3, teacher_model()
    views = TeacherViews.build(teacher, x, VIEW, k=4, seed=0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    recorder = RecordBatches()
    fit(
        student,
        Split(x, y),
        Split(x, y),
        TrainSettings(epochs=3, batch_size=8),
        recorder,
        view=VIEW,
        soft_targets=SoftTargets(views=views),
    )
    assert len(recorder.seen) == 6
    replayed: dict[int, set[int]] = {}
    teacher.eval()
    with torch.no_grad():
        for index, batch_x, soft in recorder.seen:
            assert torch.allclose(teacher(batch_x), soft, atol=1e-6)  # the teacher on what the student saw = its target
            for row, i in enumerate(index.tolist()):
                ks = [
                    k
                    for k in range(4)
                    if torch.equal(VIEW.apply(x[i : i + 1], views.params[k, i : i + 1])[0], batch_x[row])
                ]
                assert ks, f"sample {i} was fed a view that is not cached"
                assert any(torch.equal(views.logits[k, i], soft[row]) for k in ks)
                replayed.setdefault(i, set()).update(ks)
    assert any(len(ks) > 1 for ks in replayed.values())  # epochs draw different views of the same sample


def test_views_round_trip_through_a_weights_only_file(tmp_path):
    views = TeacherViews.build(teacher_model(), images(), VIEW, k=2)
    torch.save(views.state_dict(), tmp_path / "views.pt")
    loaded = TeacherViews.load(tmp_path / "views.pt")  # torch.load(weights_only=True) inside
    assert loaded.view == VIEW and loaded.k == 2 and len(loaded) == 16
    assert torch.equal(loaded.logits, views.logits) and torch.equal(loaded.params.flip, views.params.flip)


def test_fit_refuses_views_of_another_augmentation_or_split():
    x, y = images(), torch.arange(16) % 3
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    views = TeacherViews.build(teacher_model(), x, VIEW, k=2)
    other = InputView(mean=VIEW.mean, std=VIEW.std, scale=VIEW.scale, crop_padding=1, flip=True)
    with pytest.raises(ValueError, match="build them again"):
        fit(
            student,
            Split(x, y),
            Split(x, y),
            TrainSettings(epochs=1),
            RecordBatches(),
            view=other,
            soft_targets=SoftTargets(views=views),
        )
    with pytest.raises(ValueError, match="build them again"):
        fit(
            student,
            Split(x[:8], y[:8]),
            Split(x, y),
            TrainSettings(epochs=1),
            RecordBatches(),
            view=VIEW,
            soft_targets=SoftTargets(views=views),
        )
