"""Process settings the command lines make before Lightning starts: quieter, and cheaper on a CPU."""

import ctypes
import logging
import os
import re
import warnings

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
# Lightning's rank-zero messages go through these loggers (one per package that defines rank_zero_info).
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
LEAF_SPEC = "`isinstance(treespec, LeafSpec)` is deprecated"  # the start of torch's FutureWarning


def prepare_process() -> None:
    """Everything below, once per command."""
    skip_missing_nvml_probe()
    hide_advertisements()
    # The datasets are tensors in memory: worker processes would only add start-up time.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # The arguments are passed on explicitly (with "fit" added where needed), which is what this warns about.
    warnings.filterwarnings("ignore", ".*LightningCLI's args parameter is intended.*")
    # Lightning's CombinedLoader builds torch's deprecated LeafSpec, which warns at every run; only Lightning can
    # change that (tests/test_readers_parity.py says when it has).
    warnings.filterwarnings("ignore", re.escape(LEAF_SPEC), FutureWarning)


def skip_missing_nvml_probe() -> None:
    """Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that asking whether CUDA is available does
    not initialise it), and torch asks at every ``Optimizer.step``. Where NVIDIA's driver is missing, as on a CPU
    machine with torch's default CUDA build, each ask then searches the disk for ``libnvidia-ml.so.1`` in vain before
    falling back to the CUDA runtime's cached answer (docs/speed.md). Without that library the fallback is the answer
    anyway, so the search is turned off; with it, nothing changes."""
    if os.environ.get(NVML_CHECK) == "1":
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            os.environ[NVML_CHECK] = "0"


class _NoAdvertisement(logging.Filter):
    """Drops Lightning's "Tip: try installing litlogger" line, which every Trainer prints; Lightning has no switch
    for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def hide_advertisements() -> None:
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAdvertisement) for f in logger.filters):
            logger.addFilter(_NoAdvertisement())
