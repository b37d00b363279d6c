# my_plugin.py
import torch
from torch.utils.data import Dataset

from framegru import DataInfo, hookimpl


class NoiseReader(Dataset):
    """Uniform noise videos: 8 frames of 16x16 gray, 4 seen and 4 predicted."""

    def __init__(self, *, root, split, sequences: int = 16):
        self.info = DataInfo(channels=1, height=16, width=16, context=4, future=4)
        self.sequences = sequences

    def __len__(self):
        return self.sequences

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        return {"video": torch.rand(8, 1, 16, 16, generator=generator)}


@hookimpl
def framegru_register_readers(register):
    register("noise", NoiseReader)
