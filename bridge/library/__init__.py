"""The clip library: every generated clip, searchable, reproducible and never silently lost.

    from bridge.library import ClipLibrary, ClipQuery
    with ClipLibrary() as library:               # data_dir()/library.sqlite3
        clip = library.add_take(result, take)    # writes WAV + sidecar to output_dir(), records it
        library.search(ClipQuery(text="drums", kept_only=True))
"""

from bridge.library.clip import Clip, ClipInfo
from bridge.library.store import ClipLibrary, ClipQuery

__all__ = ["Clip", "ClipInfo", "ClipLibrary", "ClipQuery"]
