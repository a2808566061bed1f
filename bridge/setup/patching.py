"""Apply a unified diff (as `git diff` writes it) to files held in memory, without git or patch.

Each hunk's old lines must appear in the file exactly (whitespace included); the closest match to
the hunk's line number wins, as `patch` does it with no fuzz. A hunk whose new lines are already
there counts as applied, so patching twice is harmless. Anything else is refused with the file and
hunk named: a wrong patch must never half-apply.
"""

import re

from bridge.setup.changes import SetupError

_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")


def apply_unified_diff(files: dict[str, bytes], diff: str, what: str) -> dict[str, bytes]:
    """A copy of `files` (relative path -> bytes) with `diff` applied; `what` names them in errors."""
    result = dict(files)
    for path, hunks in _parse(diff):
        if path not in result:
            raise SetupError(f"Segue's patch does not fit this {what}: it has no {path}")
        lines = result[path].decode("utf-8").splitlines(keepends=True)
        for number, (start, old, new) in enumerate(hunks, 1):
            lines = _apply_hunk(lines, start, old, new, f"{what} {path}, hunk {number}")
        result[path] = "".join(lines).encode("utf-8")
    return result


def _parse(diff: str) -> list[tuple[str, list[tuple[int, list[str], list[str]]]]]:
    patches: list[tuple[str, list[tuple[int, list[str], list[str]]]]] = []
    hunk: tuple[int, list[str], list[str]] | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[4:].strip()
            patches.append((path[2:] if path.startswith("b/") else path, []))
            hunk = None
        elif line.startswith("--- ") or line.startswith("diff ") or line.startswith("index "):
            hunk = None
        elif (match := _HUNK.match(line)) and patches:
            hunk = (int(match.group(1)), [], [])
            patches[-1][1].append(hunk)
        elif hunk is not None and line[:1] in (" ", "-", "+", ""):
            text = line[1:]
            if line[:1] in (" ", "", "-"):
                hunk[1].append(text)
            if line[:1] in (" ", "", "+"):
                hunk[2].append(text)
    return patches


def _apply_hunk(lines: list[str], start: int, old: list[str], new: list[str], where: str) -> list[str]:
    bare = [line.rstrip("\r\n") for line in lines]
    at = _closest_match(bare, old, start - 1)
    if at is None:
        if _closest_match(bare, new, start - 1) is not None:
            return lines  # applied before
        raise SetupError(f"Segue's patch does not fit this {where}: the lines around it differ")
    ending = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    return lines[:at] + [line + ending for line in new] + lines[at + len(old):]


def _closest_match(lines: list[str], block: list[str], near: int) -> int | None:
    matches = [i for i in range(len(lines) - len(block) + 1) if lines[i:i + len(block)] == block]
    return min(matches, key=lambda i: abs(i - near)) if matches else None
