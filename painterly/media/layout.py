"""Pillow layout for figures: captioned side-by-side sheets and labelled grids. No file IO.

Used by ``--sheet``, ``painterly compare``, ``painterly features`` and ``painterly sweep``."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from painterly.media.images import fit_size, resize

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GAP = 8  # px between panels and around the edge


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font (no system fonts needed) at ``size`` px."""
    return ImageFont.load_default(size=size)


def text_size(text: str, face: ImageFont.ImageFont) -> tuple[int, int]:
    left, top, right, bottom = face.getbbox(text)
    return right - left, bottom - top


def fit_text(text: str, face: ImageFont.ImageFont, width: int) -> str:
    """``text`` shortened with "..." until it is at most ``width`` px wide."""
    if text_size(text, face)[0] <= width:
        return text
    while len(text) > 1 and text_size(text + "...", face)[0] > width:
        text = text[:-1]
    return text + "..."


def to_height(image: Image.Image, height: int) -> Image.Image:
    """``image`` as RGB, scaled (Lanczos) to ``height`` px with its aspect ratio."""
    image = image.convert("RGB")
    return resize(image, fit_size(*image.size, (10**6, height)))


def sheet(panels: Sequence[tuple[str, Image.Image]], height: int, caption_px: int | None = None) -> Image.Image:
    """Captioned images side by side, each scaled to ``height``: ``[("content", im), ("result", im)]``.

    Captions sit under their image, centred and cut to its width."""
    if not panels:
        raise ValueError("a sheet needs at least one image")
    caption_px = caption_px or max(11, min(24, height // 12))
    face = font(caption_px)
    scaled = [(label, to_height(im, height)) for label, im in panels]
    line = caption_px + caption_px // 2
    width = GAP + sum(im.width + GAP for _, im in scaled)
    canvas = Image.new("RGB", (width, GAP + height + GAP // 2 + line + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x = GAP
    for label, im in scaled:
        canvas.paste(im, (x, GAP))
        text = fit_text(label, face, im.width)
        draw.text((x + im.width / 2, GAP + height + GAP // 2), text, fill=INK, font=face, anchor="ma")
        x += im.width + GAP
    return canvas


def grid(
    cells: Sequence[Sequence[Image.Image | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    cell_captions: Sequence[Sequence[str]] | None = None,
    title: str = "",
    label_px: int = 14,
) -> Image.Image:
    """A table of images: ``cells[r][c]``, row labels on the left, column labels on top, optional
    captions under each cell and a title. Cells are pasted as they are (callers size them); a None cell
    stays blank. Column width and row height are the largest cell in that column/row."""
    n_rows, n_cols = len(cells), max((len(r) for r in cells), default=0)
    if n_rows != len(row_labels) or n_cols != len(col_labels):
        raise ValueError(f"{n_rows}x{n_cols} cells but {len(row_labels)} row and {len(col_labels)} column labels")
    face = font(label_px)
    line = label_px + label_px // 2
    col_w = [max((r[c].width for r in cells if c < len(r) and r[c] is not None), default=0) for c in range(n_cols)]
    row_h = [max((im.height for im in r if im is not None), default=0) for r in cells]
    label_w = max((text_size(t, face)[0] for t in row_labels), default=0) + GAP
    title_h = line + GAP if title else 0
    caption_h = line if cell_captions else 0
    width = GAP + label_w + sum(w + GAP for w in col_w)
    height = GAP + title_h + line + sum(h + caption_h + GAP for h in row_h)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((GAP, GAP), fit_text(title, face, width - 2 * GAP), fill=INK, font=face)
    top = GAP + title_h
    x = GAP + label_w
    for c, label in enumerate(col_labels):
        draw.text((x + col_w[c] / 2, top), fit_text(label, face, col_w[c] + GAP), fill=INK, font=face, anchor="ma")
        x += col_w[c] + GAP
    y = top + line
    for r, row in enumerate(cells):
        draw.text((GAP, y + row_h[r] / 2), row_labels[r], fill=INK, font=face, anchor="lm")
        x = GAP + label_w
        for c, im in enumerate(row):
            if im is not None:
                canvas.paste(im.convert("RGB"), (x + (col_w[c] - im.width) // 2, y + (row_h[r] - im.height) // 2))
            if cell_captions:
                text = fit_text(cell_captions[r][c], face, col_w[c])
                draw.text((x + col_w[c] / 2, y + row_h[r] + 2), text, fill=INK, font=face, anchor="ma")
            x += col_w[c] + GAP
        y += row_h[r] + caption_h + GAP
    return canvas
