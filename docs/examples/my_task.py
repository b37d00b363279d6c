# my_task.py
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from framegru import DataInfo, hookimpl
from framegru.model.tasks import Task


class SquareSpeed(Dataset):
    """A square sliding right over 16x16 gray frames; the target is its speed (0-2 pixels a frame)."""

    def __init__(self, *, root, split, sequences: int = 256, frames: int = 6):
        self.info = DataInfo(channels=1, height=16, width=16)
        self.sequences, self.frames = sequences, frames
        self.seed = {"train": 0, "val": 100_000, "test": 200_000}[split]

    def __len__(self):
        return self.sequences

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(self.seed + index)
        speed = 2 * torch.rand((), generator=g)
        top, left = torch.randint(0, 4, (2,), generator=g).tolist()
        video = torch.zeros(self.frames, 1, 16, 16)
        for t in range(self.frames):
            x = left + round(float(speed) * t)
            video[t, 0, top : top + 4, x : x + 4] = 1.0
        return {"video": video, "target": speed}


class SpeedHead(nn.Module):
    """One number per video: the last ConvGRU output, averaged over space, through a linear layer."""

    task = "regress"  # the task this head serves

    def __init__(self, *, in_channels, info, stride):
        super().__init__()
        self.out = nn.Linear(in_channels, 1)

    def forward(self, x):  # [B, T, C, h, w] -> [B]
        return self.out(x[:, -1].mean(dim=(-2, -1)))[:, 0]


class Regression(Task):
    """One number per video: MSE loss; evaluation reports RMSE and MAE; best has the lowest RMSE."""

    item_keys = ("target",)  # what every item carries besides "video"
    best_metric = "rmse"
    count_metric = "sequences"
    output_name = "value"

    def loss(self, output, batch):
        return F.mse_loss(output.float(), batch["target"].float())

    def metrics(self):
        return Errors()

    def check_output(self, output, batch):
        if output.shape != batch["target"].shape:
            return f"it returned {list(output.shape)} for targets of shape {list(batch['target'].shape)}"


class Errors:
    """RMSE and MAE over the evaluation batches."""

    def __init__(self):
        self.squared, self.absolute, self.count = 0.0, 0.0, 0

    def update(self, output, batch):
        error = output.float() - batch["target"].float()
        self.squared += error.square().sum().item()
        self.absolute += error.abs().sum().item()
        self.count += len(error)

    def result(self):
        n = max(self.count, 1)
        return {"rmse": (self.squared / n) ** 0.5, "mae": self.absolute / n, "sequences": self.count}


@hookimpl
def framegru_register_readers(register):
    register("square_speed", SquareSpeed)


@hookimpl
def framegru_register_heads(register):
    register("speed", SpeedHead)


@hookimpl
def framegru_register_tasks(register):
    register("regress", Regression)
