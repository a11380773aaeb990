"""Sky mask for the issue-5 gallery: white = sky of ../shared/data/content/golden_gate.jpg, black = the rest.

A colour/position rule, no learning: sky pixels are above the horizon, bluish (B > R) and bright.
Usage: python docs/make_sky_mask.py CONTENT SKY.png [GROUND.png]  (256 px long side, slightly feathered;
GROUND is the inverse, for giving the ground its own style)"""

import sys

import numpy as np
from PIL import Image, ImageFilter


def sky_mask(photo: Image.Image, horizon: float = 0.42) -> Image.Image:
    rgb = np.asarray(photo.convert("RGB"), dtype=np.float64) / 255
    h = rgb.shape[0]
    rows = np.arange(h)[:, None] / h
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    sky = (rows < horizon) & (rgb[..., 2] > rgb[..., 0]) & (lum > 0.45)
    mask = Image.fromarray((sky * 255).astype(np.uint8))
    return mask.filter(ImageFilter.MedianFilter(5)).filter(ImageFilter.GaussianBlur(1.5))


if __name__ == "__main__":
    photo = Image.open(sys.argv[1])
    photo.thumbnail((256, 256), Image.Resampling.LANCZOS)
    mask = sky_mask(photo)
    mask.save(sys.argv[2], optimize=True)
    if len(sys.argv) > 3:
        Image.eval(mask, lambda v: 255 - v).save(sys.argv[3], optimize=True)
