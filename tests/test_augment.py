"""The input view: normalisation formula, seeded crop + flip against a per-image reference, teacher online."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data import InputView, Split
from kdcore.distill import Distiller
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit


def images(n=6, c=3, h=8, w=8):
    return torch.arange(n * c * h * w, dtype=torch.int64).reshape(n, c, h, w).remainder(251).to(torch.uint8)


def test_normalise_is_scale_then_per_channel_standardise():
    view = InputView(mean=(0.5, 0.25), std=(0.5, 0.125), scale=1 / 255)
    x = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    expected = torch.tensor(
        [[[[(0 / 255 - 0.5) / 0.5, (1 - 0.5) / 0.5]], [[(51 / 255 - 0.25) / 0.125, (102 / 255 - 0.25) / 0.125]]]]
    )
    assert torch.allclose(view.normalise(x), expected, atol=1e-6)
    assert view.normalise(x).dtype == torch.float32


def reference_augment(x, padding, seed):
    """The same random draws as InputView.augment, applied image by image with plain slicing."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = []
    for i in range(n):
        img = F.pad(x[i], (padding,) * 4)[:, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out.append(img.flip(2) if flip[i] else img)
    return torch.stack(out)


def test_crop_and_flip_match_a_per_image_reference_and_repeat_under_a_seed():
    x = images()
    view = InputView(crop_padding=2, flip=True)  # identity normalisation: compare raw pixels
    first = view.augment(x, torch.Generator().manual_seed(7))
    again = view.augment(x, torch.Generator().manual_seed(7))
    other = view.augment(x, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(first, reference_augment(x, 2, 7).float())
    assert first.shape == x.shape


def test_no_augmentation_means_the_same_batch_every_time():
    view = InputView(mean=(0.1,), std=(0.2,), scale=1 / 255)
    assert not view.augments
    x = images(c=1)
    assert torch.equal(view.normalise(x), view.normalise(x))


class RecordTargets(Distiller):
    """Plain CE; remembers the inputs and soft targets of every batch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def loss_terms(self, student_logits, batch):
        self.seen.append((batch.x.clone(), batch.teacher_logits.clone()))
        return {"ce": F.cross_entropy(student_logits, batch.y)}


def test_online_teacher_scores_the_same_augmented_batch_the_student_sees():
    torch.manual_seed(0)
    x, y = images(n=16), torch.arange(16) % 3
    view = InputView(mean=(0.5,) * 3, std=(0.25,) * 3, scale=1 / 255, crop_padding=2, flip=True)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3), nn.Dropout(0.5))  # dropout: eval mode matters
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    recorder = RecordTargets()
    fit(
        student,
        Split(x, y),
        Split(x, y),
        TrainSettings(epochs=2, batch_size=8),
        recorder,
        view=view,
        soft_targets=SoftTargets(teacher=teacher),
    )
    assert len(recorder.seen) == 4 and not teacher.training
    with torch.no_grad():
        for batch_x, targets in recorder.seen:
            assert torch.allclose(targets, teacher(batch_x), atol=1e-6)
    # Augmented inputs really differ from the plain view, so cached (un-augmented) logits would be wrong.
    assert not any(torch.equal(bx, view.normalise(x[: len(bx)])) for bx, _ in recorder.seen)


def test_cached_logits_are_refused_when_batches_are_augmented():
    x, y = images(n=8), torch.arange(8) % 2
    view = InputView(crop_padding=2)
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    try:
        fit(
            student,
            Split(x, y),
            Split(x, y),
            TrainSettings(epochs=1),
            RecordTargets(),
            soft_targets=SoftTargets(logits=torch.zeros(8, 2)),
            view=view,
        )
    except ValueError as e:
        assert "augmented" in str(e)
    else:
        raise AssertionError("fit accepted cached logits for augmented batches")
