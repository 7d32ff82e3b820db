"""libicl from Python: ctypes bindings over libicl.so with numpy arrays in and out.

    import libicl
    fam = libicl.TaskFamily("retrieval")
    model = libicl.Model.for_family(fam, seed=1, n_layer=2)
    logits, cache = model.run_with_cache(fam.sample(4, seed=1))

Where libicl.so is looked for: libicl._lib (LIBICL_PATH first). Every C
function the package calls is declared in libicl/_lib.py.
"""
from . import _lib, probes
from ._lib import (ERR_BACKEND, ERR_CONFIG, ERR_FORMAT, ERR_INVALID_ARG, ERR_IO, ERR_NOMEM, ERR_NUMERIC, ERR_SHAPE,
                   ERR_STATE, ERR_UNSUPPORTED, OK, Error, last_error)
from .hooks import (HookPoint, Intervention, capture, forward_with, parse_point, point_name, point_names, positions,
                    run_with_cache, run_with_hooks)
from .model import Model, ModelConfig, Optimizer, Rng, StepStats, backend_available, read_config, read_meta, train
from .tasks import SAMPLE_STREAM, PromptBatch, TaskFamily, mix_counts, registry

__version__ = "0.1.0"
library_path = _lib.path
