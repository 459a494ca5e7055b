"""The demo cohort's lesion images: procedural dermoscopy-like pictures, written as JPEG.

A lesion (:func:`_lesion_layer`) gets a size, border irregularity, softness, colours and texture
that depend on its diagnosis; each picture of it (:func:`_photograph`) places it on unevenly lit,
textured skin with its own rotation, scale, framing, lighting, and sometimes a dermatoscope ring
and hairs. :func:`render_lesion` draws one picture; the cohort writer saves 600 x 450 RGB JPEGs
(quality 90) in the real release's two image folders. The design is described in the book's
Methods chapter (section "The demo cohort").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusion_utils.data._demo_tables import (
    _S_LESION,
    _S_VIEW,
    HAM_CLASSES,
    _draw_ham,
    _look,
    _rng,
    _smoothstep,
)

__all__ = ["render_lesion"]


_W, _H = 600, 450

_LESION_GEOMETRY = {  # radius range (px), border irregularity, edge softness range (px)
    "mel": ((135, 200), 0.20, (3, 12)),
    "nv": ((85, 155), 0.035, (2, 5)),
    "bcc": ((80, 145), 0.09, (6, 12)),
    "vasc": ((55, 110), 0.07, (3, 6)),
    "df": ((50, 90), 0.04, (8, 14)),
    "bkl": ((105, 175), 0.11, (2, 5)),
    "akiec": ((90, 155), 0.13, (6, 12)),
}

_PALETTE = {  # RGB colours mixed inside the lesion
    "mel": ((75, 45, 35), (35, 25, 28), (105, 110, 135), (150, 100, 70), (205, 190, 190)),
    "nv": ((135, 90, 60), (110, 70, 45), (160, 115, 80)),
    "bcc": ((215, 150, 150), (235, 215, 215), (175, 120, 130)),
    "vasc": ((165, 40, 60), (115, 35, 85), (190, 80, 95)),
    "df": ((160, 110, 80), (228, 212, 200), (140, 95, 70)),
    "bkl": ((175, 135, 95), (150, 110, 75), (195, 160, 120)),
    "akiec": ((200, 110, 100), (232, 222, 212), (180, 90, 85)),
}


def _smooth_field(rng: np.random.Generator, cells: tuple[int, int],
                  size: tuple[int, int] = (_W, _H)) -> np.ndarray:
    """Smooth random field in about [-1, 1], ``size`` (width, height), from a coarse grid."""
    from PIL import Image

    small = rng.standard_normal((cells[1], cells[0])).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize(size, Image.Resampling.BICUBIC))


def _lesion_layer(dx: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RGBA float layer (H, W, 4) of one lesion centred in the frame (alpha in [0, 1]) and the
    patient's skin colour (RGB)."""
    from PIL import Image, ImageDraw

    tone = rng.uniform(0, 1)
    skin = (1 - tone) * np.array([238, 198, 182]) + tone * np.array([200, 148, 118])
    skin = (skin + rng.normal(0, 6, size=3)).astype(np.float32)

    (r_lo, r_hi), irregular, (s_lo, s_hi) = _LESION_GEOMETRY[dx]
    radius = rng.uniform(r_lo, r_hi)
    aspect = rng.uniform(0.7, 1.0)
    angle0 = rng.uniform(0, np.pi)
    # drawn at half resolution (coordinates in full-resolution pixels), then upsampled
    w2, h2 = _W // 2, _H // 2
    yy, xx = np.mgrid[0:h2, 0:w2].astype(np.float32) * 2.0
    x, y = xx - _W / 2, yy - _H / 2
    u = x * np.cos(angle0) + y * np.sin(angle0)
    v = (-x * np.sin(angle0) + y * np.cos(angle0)) / aspect
    d = np.hypot(u, v)
    theta = np.arctan2(v, u)
    r_theta = np.ones_like(theta)
    for k in range(2, 9):
        r_theta += (irregular * rng.normal(0, 1.0) / np.sqrt(k)
                    * np.cos(k * theta + rng.uniform(0, 2 * np.pi)))
    if dx in ("mel", "akiec", "bkl"):
        for k in range(9, 24):
            r_theta += 0.35 * irregular * rng.normal(0, 1.0) / np.sqrt(k) * np.cos(
                k * theta + rng.uniform(0, 2 * np.pi))
    rr = radius * np.clip(r_theta, 0.5, 1.6)
    softness = rng.uniform(s_lo, s_hi)
    alpha = _smoothstep((rr - d) / softness + 0.5)
    rel = d / rr  # 0 at the centre, 1 on the border

    pal = np.array(_PALETTE[dx], dtype=np.float32) + rng.normal(0, 8, size=(len(_PALETTE[dx]), 3))
    f1, f2, f3 = (_smooth_field(rng, c, (w2, h2)) for c in ((6, 5), (10, 8), (16, 12)))
    fine = _smooth_field(rng, (150, 112), (w2, h2))
    pal = pal.astype(np.float32)
    colour = np.broadcast_to(pal[0], (h2, w2, 3)).astype(np.float32).copy()

    def mix(c: np.ndarray, w: np.ndarray) -> None:
        w = np.clip(w, 0, 1)[..., None]
        colour[:] = colour * (1 - w) + c * w

    if dx == "mel":
        mix(pal[1], 0.9 * (f1 + 0.3))                       # black / dark patches
        mix(pal[2], 1.2 * (f2 - 0.5))                       # blue-grey veil
        mix(pal[3], 1.0 * (f3 - 0.2) + 0.5 * (rel - 0.6))   # lighter brown towards the edge
        mix(pal[4], 1.5 * (-f1 - 0.9))                      # regression (white) areas
        colour += 18 * fine[..., None]
    elif dx == "nv":
        mix(pal[1], 0.6 * (1 - rel) - 0.1 + 0.2 * f1)       # darker centre
        mix(pal[2], 0.5 * (rel - 0.7))
        net = 0.5 + 0.5 * np.sin(u / rng.uniform(5, 8)) * np.sin(v / rng.uniform(5, 8))
        colour -= 14 * net[..., None]                       # faint pigment network
        colour += 6 * fine[..., None]
    elif dx == "bcc":
        mix(pal[1], 0.7 * (f2 - 0.1))                       # pearly white areas
        mix(pal[2], 0.6 * f1)
        colour += 8 * fine[..., None]
    elif dx == "vasc":
        mix(pal[1], 0.8 * (f2 + 0.1))                       # purple
        mix(pal[2], 0.6 * (rel - 0.7))                      # lighter rim
        lac = np.sin(u / rng.uniform(7, 11) + f3 * 2) * np.sin(v / rng.uniform(7, 11) + f2 * 2)
        colour -= 25 * np.clip(lac, 0, 1)[..., None]        # dark red lacunae
    elif dx == "df":
        mix(pal[1], 1.6 * (0.55 - rel) / 0.4 + 0.3 * f1)    # white scar-like centre
        mix(pal[2], 2.0 * (rel - 0.75))                     # darker peripheral ring
        colour += 6 * fine[..., None]
    elif dx == "bkl":
        ridges = np.sin(8 * f2 + u / 9) * np.sin(8 * f3 + v / 11)
        colour -= 16 * ridges[..., None]                    # cerebriform ridges
        mix(pal[1], 0.7 * f1)
        mix(pal[2], 0.7 * (f3 - 0.3))
    elif dx == "akiec":
        mix(pal[2], 0.7 * f1)
        scale = np.clip(3.0 * (fine - 0.6), 0, 1)           # white scale
        mix(pal[1], scale * 0.9)
        colour += 12 * fine[..., None]

    overlay = Image.new("RGBA", (w2, h2), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    if dx in ("bcc", "akiec"):  # arborising / dotted vessels
        for _ in range(int(rng.integers(4, 10)) if dx == "bcc" else 0):
            px, py = w2 / 2 + rng.normal(0, radius * 0.2), h2 / 2 + rng.normal(0, radius * 0.2)
            ang = rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(8, 20))):
                ang += rng.normal(0, 0.5)
                nx, ny = px + 3 * np.cos(ang), py + 3 * np.sin(ang)
                draw.line([(px, py), (nx, ny)], fill=(170, 30, 45, 200), width=1)
                px, py = nx, ny
        if dx == "akiec":
            for _ in range(int(rng.integers(20, 50))):
                px, py = (w2 / 2 + rng.normal(0, radius * 0.22),
                          h2 / 2 + rng.normal(0, radius * 0.22))
                draw.ellipse([px - 1, py - 1, px + 1, py + 1], fill=(175, 40, 50, 170))
    if dx in ("bkl", "nv", "mel"):  # comedo-like / globules
        n_dots = {"bkl": (10, 30), "nv": (0, 12), "mel": (5, 25)}[dx]
        for _ in range(int(rng.integers(*n_dots))):
            px, py = w2 / 2 + rng.normal(0, radius * 0.22), h2 / 2 + rng.normal(0, radius * 0.22)
            s = rng.uniform(0.8, 2.0)
            fill = (235, 225, 200, 200) if dx == "bkl" and rng.random() < 0.5 else (45, 30, 25, 190)
            draw.ellipse([px - s, py - s, px + s, py + s], fill=fill)
    over = np.asarray(overlay, dtype=np.float32)
    oa = over[..., 3:4] / 255.0 * (alpha[..., None] > 0.3)
    colour = colour * (1 - oa) + over[..., :3] * oa
    opacity = 0.75 if dx == "bcc" else 0.95
    half = np.concatenate([np.clip(colour, 0, 255), (alpha * opacity)[..., None]], axis=-1)
    full = np.stack([np.asarray(
        Image.fromarray(np.ascontiguousarray(half[..., c], dtype=np.float32), mode="F")
        .resize((_W, _H), Image.Resampling.BICUBIC))
        for c in range(4)], axis=-1)
    return full, skin


def render_lesion(dx: str, lesion_rng: np.random.Generator | int,
                  view_rng: np.random.Generator | int | None = None):  # -> PIL.Image.Image
    """Render one dermoscopy-like 600x450 RGB image of a ``dx`` lesion.

    Parameters
    ----------
    dx : str
        HAM10000 diagnosis (``akiec``, ``bcc``, ``bkl``, ``df``, ``mel``, ``nv``, ``vasc``).
    lesion_rng : numpy.random.Generator or int
        Randomness of the lesion itself (shape, colours, skin tone): images of one lesion share it.
    view_rng : numpy.random.Generator or int, optional
        Randomness of this picture (rotation, scale, framing, lighting, hair, dermatoscope ring).

    Returns
    -------
    PIL.Image.Image
    """
    if dx not in HAM_CLASSES:
        raise ValueError(f"unknown HAM10000 diagnosis {dx!r}: expected one of {HAM_CLASSES}")
    layer, skin = _lesion_layer(dx, np.random.default_rng(lesion_rng))
    return _photograph(layer, skin, np.random.default_rng(view_rng))


def _photograph(layer: np.ndarray, base: np.ndarray, vr: np.random.Generator):
    """Place a lesion layer on skin of colour ``base`` as seen in one picture."""
    from PIL import Image, ImageDraw, ImageFilter

    # the lesion seen from this picture's viewpoint
    rgba = Image.fromarray(np.clip(np.round(np.concatenate([layer[..., :3],
                                                            layer[..., 3:] * 255], -1)),
                                   0, 255).astype(np.uint8), mode="RGBA")
    scale = vr.uniform(0.9, 1.1)
    rgba = rgba.rotate(vr.uniform(0, 360), resample=Image.Resampling.BICUBIC,
                       translate=(vr.normal(0, 20), vr.normal(0, 15)))
    if abs(scale - 1) > 1e-3:
        w, h = int(_W * scale), int(_H * scale)
        big = rgba.resize((w, h), Image.Resampling.BICUBIC)
        canvas = Image.new("RGBA", (_W, _H), (0, 0, 0, 0))
        canvas.paste(big, ((_W - w) // 2, (_H - h) // 2))
        rgba = canvas
    les = np.asarray(rgba, dtype=np.float32)

    light = 1.0 + 0.07 * _smooth_field(vr, (4, 3)) + vr.uniform(-0.06, 0.06)
    skin = base[None, None, :] * light[..., None] + 5 * _smooth_field(vr, (60, 45))[..., None]
    skin += 10 * np.clip(_smooth_field(vr, (8, 6)), 0, None)[..., None] * np.array(
        [0.6, -0.4, -0.4], dtype=np.float32)
    a = les[..., 3:4] / 255.0
    img = skin * (1 - a) + les[..., :3] * light[..., None] * a

    if vr.random() < 0.35:  # dermatoscope ring
        yy, xx = np.mgrid[0:_H, 0:_W].astype(np.float32)
        rad = vr.uniform(0.5, 0.65) * _W
        ring = _smoothstep((np.hypot(xx - _W / 2, yy - _H / 2) - rad) / 25.0)
        img = img * (1 - 0.9 * ring[..., None])
    pic = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), mode="RGB")
    if vr.random() < 0.3:  # hairs
        draw = ImageDraw.Draw(pic)
        for _ in range(int(vr.integers(2, 12))):
            px, py = vr.uniform(0, _W), vr.uniform(0, _H)
            ang = vr.uniform(0, 2 * np.pi)
            pts = []
            for _ in range(int(vr.integers(15, 40))):
                ang += vr.normal(0, 0.08)
                px, py = px + 8 * np.cos(ang), py + 8 * np.sin(ang)
                pts.append((px, py))
            draw.line(pts, fill=(45, 35, 30), width=int(vr.integers(1, 3)))
    return pic.filter(ImageFilter.GaussianBlur(vr.uniform(0.6, 1.2)))


def _write_ham_images(folder: Path, n: int, seed: int, part: tuple[int, int] = (0, 1)) -> int:
    """Write the images of every ``part[1]``-th lesion from ``part[0]``; return the count."""
    df = _draw_ham(n, seed)
    numbers = df["image_id"].str[5:].astype(int).to_numpy()
    cut = np.sort(numbers)[(len(df) + 1) // 2 - 1]  # part 1: the first half of the ids
    mine = df["lesion_index_"].to_numpy() % part[1] == part[0]
    cached: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None
    done = 0
    for row, number in zip(df[mine].itertuples(index=False), numbers[mine], strict=True):
        sub = "HAM10000_images_part_1" if number <= cut else "HAM10000_images_part_2"
        lesion = int(row.lesion_index_)
        if cached is None or cached[0] != lesion:  # rows of one lesion are adjacent
            shown = _look("ham10000", row.dx, seed, lesion)  # one look per lesion
            cached = (lesion, _lesion_layer(shown, _rng(seed, _S_LESION, lesion)))
        pic = _photograph(*cached[1], _rng(seed, _S_VIEW, int(number)))
        out = folder / sub / f"{row.image_id}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        pic.save(out, format="JPEG", quality=90)
        done += 1
    return done
