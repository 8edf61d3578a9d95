"""Images under the image root: the folder/file index, path resolution with spelling fixes, decoding.

The index is built once with ``os.scandir`` (one call per folder), never a ``stat`` per record: the
real roots hold millions of images on network file systems.

Links are followed only where they stay under the root (their real path is inside it). A link leading out,
to a file or a folder, is left out of the index and remembered, so that a record naming an image through
it is refused as ``unsafe_path`` under every ``check_images`` mode: with ``exists`` and ``decode`` anywhere
in the tree, with ``none`` (which lists only the top level of the root) at the top level.
"""
from __future__ import annotations

import os
from pathlib import Path

from tinyrs.data.records import Problem, unsafe_path_problem
from tinyrs.io import DataError

FOLDER_ALIASES = (("corwdai", "crowdai"),)  # known misspellings of sub-folders, compared case-folded


class ImageTree:
    """The folders (and, for existence checks, the files) under the image root, listed once with os.scandir."""

    def __init__(self, root: str | os.PathLike, index_files: bool):
        self.root = Path(root).absolute()
        self._real_root = os.path.realpath(self.root)
        self.files: set[str] | None = set() if index_files else None
        self.links_out: dict[str, str] = {}  # links leading out of the root: relative path -> real path
        self._folders: dict[str, list[str]] = {}
        self._spellings: dict[str, list[str]] = {}
        self._prefix_cache: dict[tuple[str, bool], list[tuple[str, tuple[str, ...]]]] = {}
        if not self.root.is_dir():
            if index_files:
                raise DataError(f"image root {self.root} is not a directory")
            return
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and self._stays_inside(entry, entry.name) and entry.is_dir():
                    self._folders.setdefault(entry.name.casefold(), []).append(entry.name)
        if index_files:
            self._index_files()

    def _index_files(self) -> None:
        """Every file path relative to the root; hidden entries (e.g. the Hub's .cache) are skipped."""
        stack = [("", str(self.root))]
        seen: set[tuple[int, int]] = set()
        while stack:
            prefix, directory = stack.pop()
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not self._stays_inside(entry, prefix + entry.name):
                        continue
                    if entry.is_dir():
                        status = entry.stat()
                        if (status.st_dev, status.st_ino) not in seen:  # a symlink loop is listed once
                            seen.add((status.st_dev, status.st_ino))
                            stack.append((prefix + entry.name + "/", entry.path))
                    elif entry.is_file():  # not a broken link
                        self.files.add(prefix + entry.name)

    def _stays_inside(self, entry: os.DirEntry, relative: str) -> bool:
        """Whether ``entry`` is no link, or a link whose real path is under the root (else remembered)."""
        if not entry.is_symlink():
            return True
        target = os.path.realpath(entry.path)
        if os.path.commonpath([target, self._real_root]) == self._real_root:
            return True
        self.links_out[relative] = target
        return False

    def link_out_problem(self, path: str) -> Problem | None:
        """``unsafe_path`` when ``path`` (relative to the root) or a folder above it is a link leading out."""
        if not self.links_out:
            return None
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            link = "/".join(parts[:depth])
            if link in self.links_out:
                return Problem("unsafe_path", "image", f"{path!r} leaves the image root: {link!r} is a link to "
                                                       f"{self.links_out[link]!r}")
        return None

    def spellings(self, name: str) -> list[str]:
        """Existing top-level folders that ``name`` may mean, best first: exact, other case, alias."""
        cached = self._spellings.get(name)
        if cached is not None:
            return cached
        key = name.casefold()
        keys = [key] + [key.replace(a, b) for alias in FOLDER_ALIASES for a, b in (alias, alias[::-1]) if a in key]
        found = [name] if name in self._folders.get(key, ()) else []
        for candidate_key in keys:
            found += [folder for folder in self._folders.get(candidate_key, ()) if folder not in found]
        self._spellings[name] = found
        return found

    def _prefixes(self, folder: str, added: bool) -> list[tuple[str, tuple[str, ...]]]:
        """``(folder + "/", fixes)`` to try in front of a path: existing spellings, then ``folder`` as given."""
        key = (folder, added)
        cached = self._prefix_cache.get(key)
        if cached is None:
            first = ("image_folder_added",) if added else ()
            cached = [(spelled + "/", first + (("image_folder_respelled",) if spelled != folder else ()))
                      for spelled in self.spellings(folder)]
            if folder not in self.spellings(folder):
                cached.append((folder + "/", first))
            self._prefix_cache[key] = cached
        return cached

    def resolve(self, raw: str, source: str | None) -> tuple[str, tuple[str, ...]] | Problem:
        """The image path relative to the root and the fixes it needed, or the problem.

        Candidates, in order: the path as given (its sub-folder respelled if needed), then the path under
        ``source`` (respelled if needed). Without a file index the first candidate whose folder exists wins.
        """
        unsafe = unsafe_path_problem(raw)
        if unsafe:
            return unsafe
        if "/" in raw or raw in ("", "."):
            parts = [part for part in raw.split("/") if part not in ("", ".")]
            if not parts:
                return Problem("missing_image", "image", f"{raw!r} names no file")
            normalized = ("image_path_normalized",) if "/".join(parts) != raw else ()
        else:
            parts, normalized = [raw], ()
        groups = []  # (prefixes to try, the path they go in front of)
        if len(parts) > 1:
            groups.append((self._prefixes(parts[0], added=False), "/".join(parts[1:])))
        if source:
            groups.append((self._prefixes(source, added=True), "/".join(parts)))
        if not groups:
            groups.append(([("", ())], parts[0]))
        if self.files is None:
            prefixes, rest = groups[0]
            path = prefixes[0][0] + rest
            return self.link_out_problem(path) or (path, normalized + prefixes[0][1])
        for prefixes, rest in groups:
            for prefix, fixes in prefixes:
                if prefix + rest in self.files:
                    return prefix + rest, normalized + fixes
        tried = [prefix + rest for prefixes, rest in groups for prefix, _ in prefixes]
        for path in tried:
            problem = self.link_out_problem(path)
            if problem:
                return problem
        return Problem("missing_image", "image", f"{raw!r} not found under {self.root} (tried {', '.join(tried)})")


def decode_problem(path: str) -> str | None:
    """Why the image at ``path`` does not decode, or None when it does."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) for bad files
        return f"{type(err).__name__}: {err}"
    return None
