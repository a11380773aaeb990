"""One-pass style transfer: Magenta's arbitrary-stylization network (Ghiasi et al. 2017) and AdaIN (Huang &
Belongie 2017). ``paint`` is the entry ``api.iterate`` dispatches ``method="fast"`` to."""

from painterly.fast.onepass import FastSettings, load_model, paint, settings

__all__ = ["FastSettings", "load_model", "paint", "settings"]
