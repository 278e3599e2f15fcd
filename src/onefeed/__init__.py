"""onefeed: unified generative search and recommendation over semantic IDs."""

import os as _os

__version__ = "0.1.0"

# polars' allocator (jemalloc, read once when polars loads) keeps freed pages for seconds by
# default, so a process's peak RSS is far above what it holds at any moment: at 10M events
# `prepare` held 0.3 GiB of frames with 1.35 GiB resident. Return freed pages promptly unless
# the variable is set already (docs/SCALE.md "Out-of-core prepare").
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
