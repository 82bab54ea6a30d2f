"""Networks for small images: ResNet-18 for 28-32 px, the MNIST students, an airbench-style CIFAR net."""

from __future__ import annotations

import torch.nn as nn
import torchvision

from .registry import register_model


def small_image_resnet18(num_classes: int, in_chans: int) -> nn.Module:
    """torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool, so 28-32 px inputs keep
    their resolution through the first stage (about 11.2M parameters)."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model
def resnet18_mnist(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The MNIST teacher: ResNet-18 for 28x28 grayscale."""
    return small_image_resnet18(num_classes, in_chans)


@register_model
def resnet18_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """The usual CIFAR ResNet-18 (3x3 stem, no max-pool)."""
    return small_image_resnet18(num_classes, in_chans)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, groups: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


@register_model
def simplecnn(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """Five plain 3x3 conv layers, two max-pools, global average pooling (about 130k parameters)."""
    return nn.Sequential(
        _conv_bn_relu(in_chans, 32),
        _conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        _conv_bn_relu(32, 64),
        _conv_bn_relu(64, 64),
        nn.MaxPool2d(2),
        _conv_bn_relu(64, 112),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(112, num_classes),
    )


class DepthwiseSeparable(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(_conv_bn_relu(cin, cin, stride, groups=cin), _conv_bn_relu(cin, cout, kernel=1))


# (output channels, stride) of the depthwise-separable blocks: MobileNet-v1's first six, which at
# 28x28 already reach a 7x7 map.
MOBILENET_STUDENT_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 1))


@register_model
def mobilenet_student(num_classes: int = 10, in_chans: int = 1, width: float = 1.0) -> nn.Module:
    """MobileNet-style student: 3x3 stem then depthwise-separable blocks (about 273k parameters at
    width 1.0, about 40x fewer than ``resnet18_mnist``). ``width`` scales every layer's channels."""

    def ch(c: int) -> int:
        return max(8, int(round(c * width)))

    layers: list[nn.Module] = [_conv_bn_relu(in_chans, ch(32))]
    cin = ch(32)
    for cout, stride in MOBILENET_STUDENT_BLOCKS:
        layers.append(DepthwiseSeparable(cin, ch(cout), stride))
        cin = ch(cout)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


class _ConvGroup(nn.Sequential):
    # airbench's block: conv, max-pool, BN, GELU, conv, BN, GELU
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


@register_model
def airbench_net(num_classes: int = 10, in_chans: int = 3, width: float = 1.0) -> nn.Module:
    """The network shape of KellerJordan/cifar10-airbench (airbench94): a small stem, three conv groups of
    64, 256 and 256 channels (times ``width``), global max-pool and a linear head. About 2.0M parameters at
    width 1; fast on a T4. The fixed whitening stem of the original is replaced by a learned 3x3 conv."""
    w = [max(8, int(round(c * width))) for c in (32, 64, 256, 256)]
    return nn.Sequential(
        nn.Conv2d(in_chans, w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]), nn.GELU(),
        _ConvGroup(w[0], w[1]), _ConvGroup(w[1], w[2]), _ConvGroup(w[2], w[3]),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w[3], num_classes),
    )
