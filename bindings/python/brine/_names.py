"""Names of checkpoints in a directory (docs/format.md, sections 1 and 7.1): defined once here."""

import re

# A prefix: 1..64 of [A-Za-z0-9_.+-], not starting with '.'.
PREFIX_PATTERN = r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,63}"
PREFIX = re.compile(PREFIX_PATTERN)
# <prefix>-<12 digits>.h5: a single-file checkpoint.
CHECKPOINT_NAME = re.compile(r"(?P<prefix>" + PREFIX_PATTERN + r")-(?P<step>[0-9]{12})\.h5")
# <prefix>-<12 digits>: a multi-rank checkpoint directory.
DIR_NAME = re.compile(r"(?P<prefix>" + PREFIX_PATTERN + r")-(?P<step>[0-9]{12})")
