"""Cost of the Gram and Wasserstein style losses at 256 px (random weights, CPU): per layer (forward + backward
of the style term alone, min of 5) and per whole iteration, interleaved so both see the same machine load."""

import time

import torch

from painterly.api import backbone_for, pick_device, run
from painterly.config import FIELDS, build_config
from painterly.engine.losses import gaussian_target, gram, mean_cov, style_layer_loss, wasserstein_loss
from painterly.media.images import fit_size, load_image, resize, to_tensor

c, s = "../shared/data/content/golden_gate.jpg", "../shared/data/style/starry_night.jpg"
base = {"weights": "random", "size": 256, "iterations": 6}
if "stages" in FIELDS:
    base["stages"] = 1  # one stage at 256 px: the cost we want
cfg = build_config("stylize", base)
ex = backbone_for(cfg, pick_device("cpu"))
print("torch threads", torch.get_num_threads())


REPS = 10  # min of REPS: the machine is shared, the minimum is the least disturbed run


def bench(fn, reps=5):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


im, si = load_image(c), load_image(s)
x = to_tensor(resize(im, fit_size(*im.size, 256))).contiguous()
y = to_tensor(resize(si, fit_size(*si.size, 256))).contiguous()
names = [n for n, _ in cfg.optimize.style_layers]
with torch.no_grad():
    fs, fc = ex(y), ex(x)
tot = {"gram": 0.0, "w2": 0.0, "naive": 0.0, "setup": 0.0}


def g_step(f, a):
    f.grad = None
    style_layer_loss(gram(f), a, "target", 0, 0).backward()


def w_step(f, t):
    f.grad = None
    wasserstein_loss(f, t).backward()


def naive(f, t):  # what many ports do: a full matrix square root of the C x C product every step
    f.grad = None
    mu, cov = mean_cov(f)
    lam, v = torch.linalg.eigh(t["cov_sqrt"] @ cov @ t["cov_sqrt"])
    root = (v * lam.clamp(min=1e-8).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)
    trace = cov.diagonal(dim1=-2, dim2=-1).sum() - 2 * root.diagonal(dim1=-2, dim2=-1).sum()
    ((mu - t["mean"]).pow(2).sum() + trace).backward()


for n in names:
    f = fc[n].clone().requires_grad_()
    a, target = gram(fs[n]), gaussian_target(*mean_cov(fs[n]))
    t = {
        "gram": bench(lambda: g_step(f, a), REPS),  # noqa: B023 - called at once, inside this iteration
        "w2": bench(lambda: w_step(f, target), REPS),  # noqa: B023 - idem
        "naive": bench(lambda: naive(f, target), REPS),  # noqa: B023 - idem
        "setup": bench(lambda: gaussian_target(*mean_cov(fs[n])), 3),  # noqa: B023 - idem
    }
    for k in tot:
        tot[k] += t[k]
    print(
        f"{n} C={f.shape[1]} positions={f.shape[2] * f.shape[3]}: gram {t['gram'] * 1e3:.1f} ms, "
        f"W2 {t['w2'] * 1e3:.1f} ms, W2 with per-step sqrtm {t['naive'] * 1e3:.1f} ms, "
        f"W2 target (once) {t['setup'] * 1e3:.1f} ms"
    )
print("all layers: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in tot.items()))

per = {"gram": [], "wasserstein": []}
for loss in ("gram", "wasserstein") * 2:
    r = run(build_config("stylize", {**base, "style_loss": loss}), c, s, extractor=ex)
    h = r.losses
    per[loss].append((h[-1]["elapsed"] - h[0]["elapsed"]) / (len(h) - 1))  # without the first iteration
for k, v in per.items():
    print(f"whole iteration at 256 px, {k}: {min(v):.2f} s (runs: {', '.join(f'{t:.2f}' for t in v)})")
