"""Zoo twins with stems adapted to small (CIFAR-size) images, as ppuda's `adjust_net` does.

ppuda (`ppuda/utils/utils.py: adjust_net`) edits torchvision models in place before
predicting or training them on 32x32 images:

| family            | change                                                               |
|-------------------|----------------------------------------------------------------------|
| ResNet/ResNeXt/WRN| conv1 -> 3x3, stride 1, padding 1; maxpool removed                   |
| DenseNet          | conv0 -> 3x3, stride 1, padding 1; pool0 (features[3]) removed       |
| MobileNetV2/V3    | every conv of features[:5] gets stride 1 (residuals stay as built)   |
| VGG               | the max-pools among features[:10] removed                            |
| AlexNet           | features[0] stride 1; features[2] (first max-pool) removed           |
| ShuffleNetV2      | maxpool removed (conv1 keeps stride 2, see below)                    |
| GoogLeNet         | maxpool1 removed (conv1 keeps stride 2, see below)                   |
| MNASNet           | layers[0] (first conv) stride 1                                      |
| ConvNeXt          | the stem conv (4x4) stride 1                                         |

adjust_net also sets `stride = 1` on ShuffleNetV2's `conv1` and GoogLeNet's `conv1`, but
those are containers (a Sequential, a BasicConv2d), not convolutions: the attribute is set
and never read, so the reference nets keep stride 2 there, and so do these twins.

Module names are unchanged, so parameter paths, torch names and graphs follow the same
rules as the zoo's. Other families (EfficientNet, RegNet, SqueezeNet, Inception-v3, ViT,
Swin) have no adaptation in the reference either: `adapt(model)` returns None for them.
"""
import dataclasses
from typing import Optional

import jax
import flax.linen as nn

from ghn_jax.zoo import convnext, densenet, googlenet, mnasnet, mobilenet, resnet, shufflenet, vgg
from ghn_jax.zoo.layers import (BatchNorm2d, Conv2d, Conv2dNormActivation, Dropout, Linear,
                                global_avg_pool, make_divisible, max_pool2d)


# ------------------------------------------------------------------------------- ResNet

class SmallResNet(resnet.ResNet):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv2d(64, 3, 1, 1, bias=False, name="conv1")(x)
        x = jax.nn.relu(BatchNorm2d(train, name="bn1")(x))
        in_planes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), self.layers)):
            x = resnet.ResLayer(self.block, planes, n, 1 if i == 0 else 2, in_planes, self.groups,
                                self.width_per_group, name=f"layer{i + 1}")(x, train)
            in_planes = planes * self.block.expansion
        return Linear(self.num_classes, name="fc")(global_avg_pool(x))


# ----------------------------------------------------------------------------- DenseNet

class _SmallDenseFeatures(densenet._Features):
    @nn.compact
    def __call__(self, x, train):
        x = Conv2d(self.num_init_features, 3, 1, 1, bias=False, name="conv0")(x)
        x = jax.nn.relu(BatchNorm2d(train, name="norm0")(x))
        n = self.num_init_features
        for i, layers in enumerate(self.block_config):
            x = densenet.DenseBlock(layers, self.growth_rate, self.bn_size, name=f"denseblock{i + 1}")(x, train)
            n += layers * self.growth_rate
            if i != len(self.block_config) - 1:
                x = densenet.Transition(n // 2, name=f"transition{i + 1}")(x, train)
                n //= 2
        return BatchNorm2d(train, name="norm5")(x)


class SmallDenseNet(densenet.DenseNet):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _SmallDenseFeatures(self.growth_rate, self.block_config, self.num_init_features, self.bn_size,
                                name="features")(x, train)
        return Linear(self.num_classes, name="classifier")(global_avg_pool(jax.nn.relu(x)))


# ---------------------------------------------------------------------------- MobileNet

class _SmallV2Features(mobilenet._V2Features):
    @nn.compact
    def __call__(self, x, train: bool = False):
        inp = make_divisible(32 * self.width_mult, 8)
        last = make_divisible(1280 * max(1.0, self.width_mult), 8)
        x = Conv2dNormActivation(inp, 3, 1, activation=jax.nn.relu6, name="0")(x, train)
        idx = 1
        for t, c, n, s in mobilenet._V2_SETTING:
            out = make_divisible(c * self.width_mult, 8)
            for i in range(n):
                stride = 1 if idx < 5 else (s if i == 0 else 1)
                # torch decides the residual at construction (original stride); every block of
                # features[1:5] whose stride changes also changes width, so both rules agree.
                x = mobilenet.InvertedResidualV2(inp, out, stride, t, name=str(idx))(x, train)
                inp, idx = out, idx + 1
        return Conv2dNormActivation(last, 1, activation=jax.nn.relu6, name=str(idx))(x, train)


class SmallMobileNetV2(mobilenet.MobileNetV2):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _SmallV2Features(self.width_mult, name="features")(x, train)
        return mobilenet.DropoutLinear(self.num_classes, self.dropout, name="classifier")(global_avg_pool(x), train)


class _SmallV3Residual(nn.Module):
    """InvertedResidualV3 run with stride 1; the residual is kept as torch built it."""
    cnf: tuple

    @nn.compact
    def __call__(self, x, train: bool = False):
        inp, k, exp, out, use_se, act, stride, dilation = self.cnf
        inp, exp, out = make_divisible(inp), make_divisible(exp), make_divisible(out)
        act = jax.nn.hard_swish if act == "HS" else jax.nn.relu
        y = mobilenet._V3Block(inp, k, exp, out, use_se, act, 1, dilation, name="block")(x, train)
        return y + x if stride == 1 and inp == out else y


class _SmallV3Features(mobilenet._V3Features):
    @nn.compact
    def __call__(self, x, train: bool = False):
        first = make_divisible(self.setting[0][0])
        x = Conv2dNormActivation(first, 3, 1, activation=jax.nn.hard_swish, name="0", **mobilenet._V3_BN)(x, train)
        for i, cnf in enumerate(self.setting):
            block = _SmallV3Residual if i + 1 < 5 else mobilenet.InvertedResidualV3
            x = block(cnf, name=str(i + 1))(x, train)
        last_in = make_divisible(self.setting[-1][3])
        return Conv2dNormActivation(6 * last_in, 1, activation=jax.nn.hard_swish,
                                    name=str(len(self.setting) + 1), **mobilenet._V3_BN)(x, train)


class SmallMobileNetV3(mobilenet.MobileNetV3):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _SmallV3Features(self.setting, name="features")(x, train)
        return mobilenet._V3Classifier(self.last_channel, self.num_classes, self.dropout,
                                       name="classifier")(global_avg_pool(x), train)


# --------------------------------------------------------------------------- ShuffleNetV2

class SmallShuffleNetV2(shufflenet.ShuffleNetV2):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = shufflenet._ConvBN(self.channels[0], 3, 2, 1, name="conv1")(x, train)
        inp = self.channels[0]
        for i, (r, out) in enumerate(zip(self.repeats, self.channels[1:4])):
            x = shufflenet._Stage(inp, out, r, name=f"stage{i + 2}")(x, train)
            inp = out
        x = shufflenet._ConvBN(self.channels[4], 1, 1, 0, name="conv5")(x, train)
        return Linear(self.num_classes, name="fc")(global_avg_pool(x))


# ------------------------------------------------------------------------------ GoogLeNet

class SmallGoogLeNet(googlenet.GoogLeNet):
    @nn.compact
    def __call__(self, x, train: bool = False):
        aux = train or self.is_initializing()
        x = googlenet.BasicConv2d(64, 7, 2, 3, name="conv1")(x, train)
        x = googlenet.BasicConv2d(64, 1, name="conv2")(x, train)
        x = googlenet.BasicConv2d(192, 3, padding=1, name="conv3")(x, train)
        x = max_pool2d(x, 3, 2, ceil_mode=True)
        x = googlenet.Inception(64, 96, 128, 16, 32, 32, name="inception3a")(x, train)
        x = googlenet.Inception(128, 128, 192, 32, 96, 64, name="inception3b")(x, train)
        x = max_pool2d(x, 3, 2, ceil_mode=True)
        x = googlenet.Inception(192, 96, 208, 16, 48, 64, name="inception4a")(x, train)
        aux1 = googlenet.InceptionAux(self.num_classes, self.dropout_aux, name="aux1")(x, train) if aux else None
        x = googlenet.Inception(160, 112, 224, 24, 64, 64, name="inception4b")(x, train)
        x = googlenet.Inception(128, 128, 256, 24, 64, 64, name="inception4c")(x, train)
        x = googlenet.Inception(112, 144, 288, 32, 64, 64, name="inception4d")(x, train)
        aux2 = googlenet.InceptionAux(self.num_classes, self.dropout_aux, name="aux2")(x, train) if aux else None
        x = googlenet.Inception(256, 160, 320, 32, 128, 128, name="inception4e")(x, train)
        x = max_pool2d(x, 2, 2, ceil_mode=True)
        x = googlenet.Inception(256, 160, 320, 32, 128, 128, name="inception5a")(x, train)
        x = googlenet.Inception(384, 192, 384, 48, 128, 128, name="inception5b")(x, train)
        x = Dropout(self.dropout)(global_avg_pool(x), train)
        x = Linear(self.num_classes, name="fc")(x)
        return (x, aux2, aux1) if train else x


# -------------------------------------------------------------------------------- MNASNet

class _SmallMnasLayers(mnasnet._Layers):
    @nn.compact
    def __call__(self, x, train: bool = False):
        d = self.depths
        x = jax.nn.relu(mnasnet._bn(train, "1")(Conv2d(d[0], 3, 1, 1, bias=False, name="0")(x)))
        x = Conv2d(d[0], 3, 1, 1, groups=d[0], bias=False, name="3")(x)
        x = jax.nn.relu(mnasnet._bn(train, "4")(x))
        x = mnasnet._bn(train, "7")(Conv2d(d[1], 1, bias=False, name="6")(x))
        stacks = ((d[1], d[2], 3, 2, 3, 3), (d[2], d[3], 5, 2, 3, 3), (d[3], d[4], 5, 2, 6, 3),
                  (d[4], d[5], 3, 1, 6, 2), (d[5], d[6], 5, 2, 6, 4), (d[6], d[7], 3, 1, 6, 1))
        for i, stack in enumerate(stacks):
            x = mnasnet._Stack(*stack, name=str(8 + i))(x, train)
        x = Conv2d(1280, 1, bias=False, name="14")(x)
        return jax.nn.relu(mnasnet._bn(train, "15")(x))


class SmallMNASNet(mnasnet.MNASNet):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _SmallMnasLayers(mnasnet.get_depths(self.alpha), name="layers")(x, train)
        return mobilenet.DropoutLinear(self.num_classes, self.dropout, name="classifier")(global_avg_pool(x), train)


_ADAPTED = {
    resnet.ResNet: SmallResNet,
    densenet.DenseNet: SmallDenseNet,
    mobilenet.MobileNetV2: SmallMobileNetV2,
    mobilenet.MobileNetV3: SmallMobileNetV3,
    vgg.VGG: lambda **f: vgg.VGG(**dict(f, first_pool=10)),
    vgg.AlexNet: lambda **f: vgg.AlexNet(**dict(f, small=True)),
    shufflenet.ShuffleNetV2: SmallShuffleNetV2,
    googlenet.GoogLeNet: SmallGoogLeNet,
    mnasnet.MNASNet: SmallMNASNet,
    convnext.ConvNeXt: lambda **f: convnext.ConvNeXt(**dict(f, stem_stride=1)),
}

SUPPORTED_FAMILIES = ("resnet/resnext/wide_resnet", "densenet", "mobilenet_v2/v3", "vgg", "alexnet",
                      "shufflenet_v2", "googlenet", "mnasnet", "convnext")


def adapt(model: nn.Module) -> Optional[nn.Module]:
    """The small-image twin of a zoo model (same fields, same names), or None if its family
    has no adaptation. VGG, AlexNet and ConvNeXt take it as a field of the zoo module itself."""
    cls = _ADAPTED.get(type(model))
    if cls is None:
        return None
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
              if f.init and f.name not in ("parent", "name")}
    return cls(**fields)
