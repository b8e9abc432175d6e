"""A font for the text of a figure that matplotlib's default font cannot draw (Chinese, Japanese or Korean class
names, ...): without one, each such character is drawn as an empty box and matplotlib warns "Glyph ... missing
from font(s) DejaVu Sans"."""

import functools
from collections.abc import Iterable

from matplotlib import font_manager
from matplotlib.font_manager import FontProperties


def font_family_for(texts: Iterable[str]) -> list[str] | None:
    """The font family under which matplotlib draws every character of ``texts``: matplotlib's default
    sans-serif font, followed, where that one lacks some characters, by an installed font that has them all
    (matplotlib takes each glyph from the first font of the family that has it); None where no installed font
    has them."""
    return _family(tuple(texts))


@functools.cache
def _family(texts: tuple[str, ...]) -> list[str] | None:
    default = font_manager.findfont(FontProperties())  # the font of text drawn with no other
    family = [font_manager.get_font(default).family_name]
    needed = {ord(c) for text in texts for c in text if c.isprintable() and not c.isspace()}
    missing = needed - _glyphs(default)
    if not missing:
        return family
    for path, name in _installed():
        if name.startswith("Last Resort"):  # matplotlib's own: a box for every character, which is what we avoid
            continue
        try:
            if missing <= _glyphs(path):
                return [*family, name]
        except (OSError, RuntimeError):  # a file FreeType cannot read: not a font to draw with
            continue
    return None


def _installed() -> Iterable[tuple[str, str]]:
    """The files and names of the fonts matplotlib knows, regular sans-serif ones first; then of those installed
    since matplotlib cached its list of fonts, which it does not look for again (each one registered when
    reached)."""

    def rank(entry: font_manager.FontEntry) -> tuple:
        return entry.style != "normal", entry.weight not in (400, "normal", "regular"), "Sans" not in entry.name

    known = sorted(font_manager.fontManager.ttflist, key=rank)
    yield from {entry.fname: entry.name for entry in reversed(known)}.items()  # each file under its best name
    registered = {entry.fname for entry in known}
    for path in sorted(font_manager.findSystemFonts(), key=lambda path: ("Sans" not in path, "Bold" in path, path)):
        if path in registered:
            continue
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError):
            continue
        yield path, next(entry.name for entry in font_manager.fontManager.ttflist if entry.fname == path)


@functools.cache
def _glyphs(path: str) -> frozenset[int]:
    return frozenset(font_manager.get_font(path).get_charmap())
