"""Small convolutional backbones that train from scratch on a CPU or one GPU."""

from __future__ import annotations

from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class SmallResNet(nn.Module):
    """ResNet-18 layout with a 3x3 stem and no max-pool, for small images.

    Parameters
    ----------
    widths : tuple of int
        Channels of the four stages; the embedding has ``widths[-1]`` dimensions.
    blocks : tuple of int
        Residual blocks per stage.

    The forward pass maps (B, 3, H, W) images to (B, widths[-1]) features.
    """

    def __init__(self, *, widths=(40, 80, 160, 320), blocks=(2, 2, 2, 2)):
        super().__init__()
        self.widths, self.blocks = tuple(widths), tuple(blocks)
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages, in_channels = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            layers = []
            for block in range(count):
                layers.append(BasicBlock(in_channels, width, stride if block == 0 else 1))
                in_channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.embed_dim = widths[-1]

    def forward(self, x):
        return self.stages(self.stem(x)).mean(dim=(2, 3))


def projection_head(in_dim, hidden_dim, out_dim):
    """SimCLR's MLP head; it is dropped after training, only the backbone is kept."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
    )
