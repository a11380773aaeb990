"""One preset per tutorial setup this project grew from, plus our tuned ``default``.

Values are RunConfig field names. Each preset sets every field that its source fixes, so that
``--preset X`` reproduces the source whatever the defaults become. Where the source leaves a value open,
the comment says what we chose."""

from __future__ import annotations

from dataclasses import dataclass

CAFFE_RELU_X_1 = tuple(f"conv{i}_1" for i in range(1, 6))


@dataclass(frozen=True)
class Preset:
    origin: str
    values: dict


def _equal(layers: tuple[str, ...], total: float = 1.0) -> tuple[tuple[str, float], ...]:
    return tuple((name, total / len(layers)) for name in layers)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        "painterly's own: every term normalised by its target's magnitude so one set of weights works at any "
        "size and for ImageNet or random weights; a Laplacian term (Li et al. 2017) holds the photo's edges "
        "so an 8x stronger style weight, most of it on the fine layers, carries the painting without dissolving "
        "the photo (issue 12, docs/quality.md); L-BFGS from the photo recoloured to the painting's colour mean and "
        "covariance",
        dict(
            backbone="vgg19",
            pooling="avg",
            pixels="torch",
            size=512,
            content_layers=("relu4_2",),
            style_layers="auto",  # relu1_1..relu5_1: 0.4/0.3/0.1/0.1/0.1 to stylise, 0.2 each for a texture
            content_norm="target",
            gram_norm="hw",
            style_norm="target",
            tv_loss="l2",
            content_weight=1.0,
            style_weight=80.0,
            tv_weight=0.0,
            structure_weight=0.5,
            balance="fixed",
            optimizer="lbfgs",
            lr=1.0,
            iterations=300,
            stages=None,
            min_size=128,
            init="color",
            init_noise_ratio=0.0,
            noise_amplitude=0.5,
        ),
    ),
    "gatys": Preset(
        "Gatys, Ecker & Bethge, 'Image Style Transfer Using CNNs' (CVPR 2016): Caffe VGG19 with average "
        "pooling, E_l = sum((G-A)^2)/(4 N^2 M^2), content 1/2 sum((F-P)^2), alpha/beta = 1e-3, L-BFGS from "
        "white noise (iterations and size: the classic neural-style's 1000 and 512)",
        dict(
            stages=1,  # the tutorials optimise at one size
            backbone="vgg19",
            pooling="avg",
            pixels="caffe",
            size=512,
            content_layers=("conv4_2",),
            style_layers=_equal(CAFFE_RELU_X_1),
            content_norm="half-sum",
            gram_norm="none",
            style_norm="gatys",
            tv_loss="l2",
            content_weight=1.0,
            style_weight=1e3,
            structure_weight=0.0,  # not in the source
            balance="fixed",
            tv_weight=0.0,
            optimizer="lbfgs",
            lr=1.0,
            iterations=1000,
            init="noise",
            init_noise_ratio=0.0,
            noise_amplitude=0.5,
        ),
    ),
    "coursera": Preset(
        "deeplearning.ai 'Art Generation with Neural Style Transfer' notebook: VGG19 (MatConvNet, average "
        "pooling, 0-255 mean-subtracted input), content conv4_2 sum/(4 nH nW nC), style conv1_1..conv5_1 x 0.2 "
        "with sum/(4 nC^2 (nH nW)^2), alpha 10, beta 40, Adam lr 2.0, 0.6 * U(-20, 20) noise + 0.4 * content, "
        "200 iterations, 400x300",
        dict(
            stages=1,  # the tutorials optimise at one size
            backbone="vgg19",
            pooling="avg",
            pixels="caffe",
            size=(400, 300),
            content_layers=("conv4_2",),
            style_layers=_equal(CAFFE_RELU_X_1),
            content_norm="coursera",
            gram_norm="none",
            style_norm="gatys",
            tv_loss="l2",
            content_weight=10.0,
            style_weight=40.0,
            structure_weight=0.0,  # not in the source
            balance="fixed",
            tv_weight=0.0,
            optimizer="adam",
            lr=2.0,
            iterations=200,
            init="content",
            init_noise_ratio=0.6,
            noise_amplitude=20 / 255,
        ),
    ),
    "keras-vgg19": Preset(
        "Keras/TensorFlow 'recreate content / recreate style' VGG19 notebook: content block2_conv2, style "
        "block1_conv1..block5_conv1, mean-squared losses, Gram / (H W), style averaged over layers. Left open "
        "there, chosen here: the TF tutorial's weights (content 1e4, style 1e-2), Adam lr 0.02 in 0-1 pixel "
        "units (5.1 in Caffe units), content init, 1000 steps, 512 px",
        dict(
            stages=1,  # the tutorials optimise at one size
            backbone="vgg19",
            pooling="max",
            pixels="caffe",
            size=512,
            content_layers=("block2_conv2",),
            style_layers=_equal(tuple(f"block{i}_conv1" for i in range(1, 6))),
            content_norm="mean",
            gram_norm="hw",
            style_norm="mean",
            tv_loss="l2",
            content_weight=1e4,
            style_weight=1e-2,
            structure_weight=0.0,  # not in the source
            balance="fixed",
            tv_weight=0.0,
            optimizer="adam",
            lr=0.02 * 255,
            iterations=1000,
            init="content",
            init_noise_ratio=0.0,
            noise_amplitude=0.5,
        ),
    ),
    "pytorch-blog": Preset(
        "PyTorch VGG19 style-transfer blog post: torchvision VGG19 (max pooling, 0-1 mean/std input), content "
        "conv4_2 mean((F-P)^2), style conv1_1 1, conv2_1 0.7, conv3_1 0.5, conv4_1 0.3, conv5_1 0.2 with "
        "mean((G-A)^2)/(C H W) on unnormalised Grams, content 1, style 1e6, Adam lr 0.003 on the normalised "
        "image from the content, long side 400, 3000 steps",
        dict(
            stages=1,  # the tutorials optimise at one size
            backbone="vgg19",
            pooling="max",
            pixels="torch",
            size=400,
            content_layers=("conv4_2",),
            style_layers=(("conv1_1", 1.0), ("conv2_1", 0.7), ("conv3_1", 0.5), ("conv4_1", 0.3), ("conv5_1", 0.2)),
            content_norm="mean",
            gram_norm="none",
            style_norm="mean-chw",
            tv_loss="l2",
            content_weight=1.0,
            style_weight=1e6,
            structure_weight=0.0,  # not in the source
            balance="fixed",
            tv_weight=0.0,
            optimizer="adam",
            lr=0.003,
            iterations=3000,
            init="content",
            init_noise_ratio=0.0,
            noise_amplitude=0.5,
        ),
    ),
    "keras-vgg16": Preset(
        "Keras VGG16 L-BFGS post: VGG16 (max pooling, Caffe input), content block2_conv2 sum((F-P)^2) x 0.02, "
        "style block1_conv2, block2_conv2, block3_conv3, block4_conv3, block5_conv3 sharing weight 4.5 with "
        "sum((G-A)^2)/(4 * 3^2 * (W H)^2), TV 0.995 * sum((dx^2 + dy^2)^1.25), U(0, 255) - 128 init, 260x260, "
        "L-BFGS 10 rounds x 20 evaluations = 200",
        dict(
            stages=1,  # the tutorials optimise at one size
            backbone="vgg16",
            pooling="max",
            pixels="caffe",
            size=(260, 260),
            content_layers=("block2_conv2",),
            style_layers=_equal(("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"), 4.5),
            content_norm="sum",
            gram_norm="none",
            style_norm="keras-vgg16",
            tv_loss="keras",
            tv_power=1.25,
            content_weight=0.02,
            style_weight=1.0,
            structure_weight=0.0,  # not in the source
            balance="fixed",
            tv_weight=0.995,
            optimizer="lbfgs",
            lr=1.0,
            iterations=200,
            init="noise",
            init_noise_ratio=0.0,
            noise_amplitude=128 / 255,
        ),
    ),
}
