"""Lightning's notices that a seglab user cannot act on, each named and dropped here, where
seglab's trainer is built; everything else Lightning says reaches the console once."""

from __future__ import annotations

import logging
import warnings

# (message pattern, module that warns, why it is not the user's to act on)
UNACTIONABLE = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree",
     "inside Lightning's own loops, with torch >= 2.10"),
    (r"Precision bf16-mixed is not supported by the model summary",
     r"lightning\.pytorch\.utilities\.model_summary",
     "only the summary's size estimate; training runs in bf16-mixed as asked"),
    (r"ReduceLROnPlateau conditioned on metric .* not available but strict is set to `False`",
     r"lightning\.pytorch\.loops\.training_epoch_loop",
     "an epoch ended before a run that validates by steps first validated; its plateau "
     "schedule is stepped at validations (SegmentationModule.lr_scheduler_step)"),
)
for _message, _module, _why in UNACTIONABLE:
    warnings.filterwarnings("ignore", message=_message, module=_module)


class _NoTips(logging.Filter):
    """Drops Lightning's promotional "Tip" lines from the run's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoTips())
