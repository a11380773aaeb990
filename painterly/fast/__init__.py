"""One-pass style transfer: Magenta's arbitrary-stylization network (Ghiasi et al. 2017) and AdaIN (Huang &
Belongie 2017). ``paint`` is the entry ``api.iterate`` dispatches ``method="fast"`` to.

Importing this package binds ``painterly.fast`` to it, over the API helper ``painterly.fast(content, style,
...)`` of the same name; the package is therefore callable and forwards to that helper, so both spellings
keep working whatever was imported first."""

import sys
import types

from painterly.fast.onepass import FastSettings, load_model, paint, settings

__all__ = ["FastSettings", "load_model", "paint", "settings"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204 - the signature is api.fast's
        """``painterly.fast(content, style, *, mask=None, **options)``: see ``painterly.api.fast``."""
        from painterly.api import fast

        return fast(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
