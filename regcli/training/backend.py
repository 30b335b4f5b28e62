"""Choosing the Keras backend and device before Keras is imported (Keras reads them once),
and what the chosen backend is and sees once it is loaded.

No Keras at import time: the CLI imports this module for every command.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from regcli.errors import BadInputError

_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# True in regcli's own processes (the console script, sweep workers), which never switch backends:
# `select` may keep out what their backend does not use. A library caller's process is left alone.
OWN_PROCESS = False
JAX_CACHE_ENV_VAR = "REGCLI_JAX_CACHE"  # "off": no persistent JAX compilation cache


def select(backend: str, device: str, tensorflow_needed: bool = False) -> None:
    """Sets KERAS_BACKEND (and hides GPUs for `device: cpu`) for this process.

    In regcli's own processes (`OWN_PROCESS`) a JAX (or torch) run keeps TensorFlow out unless
    `tensorflow_needed` (TensorBoard event files are written with `tf.summary`):
    `keras.utils.set_random_seed` imports TensorFlow whenever it is installed, only to seed
    it, which cost a JAX run ~5 s and TensorFlow's C++ start-up logs on stderr.

    Raises BadInputError when the backend's package is not installed, or when Keras was
    already imported with another backend in this process.
    """
    module = _MODULES.get(backend)
    if module is None:
        raise BadInputError(f"backend must be one of {', '.join(_MODULES)}. Received: {backend!r}.")
    if importlib.util.find_spec(module) is None:
        extra = {"jax": " Install it with `pip install 'regcli[jax]'`."}.get(backend, "")
        raise BadInputError(f"backend: {backend} is not installed in this environment.{extra}")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise BadInputError(
                f"backend: {backend} was asked for, but Keras is already loaded with "
                f"{keras.backend.backend()} in this process. Run it in a new process."
            )
        return
    os.environ["KERAS_BACKEND"] = backend
    if OWN_PROCESS and backend != "jax" and "jax" not in sys.modules:
        # TensorFlow's tf.lite helpers import JAX whenever it is installed (0.5-0.7 s of a ~6 s
        # import measured here), and nothing in a TensorFlow process uses it: with None in sys.modules,
        # `import jax` fails at once (they catch that).
        sys.modules["jax"] = None
    if OWN_PROCESS and backend != "tensorflow" and not tensorflow_needed and "tensorflow" not in sys.modules:
        sys.modules["tensorflow"] = None  # `import tensorflow` now fails at once; Keras then skips it
    # TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is noise for users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    if OWN_PROCESS and backend == "jax":
        use_jax_compilation_cache()


def use_jax_compilation_cache() -> None:
    """JAX keeps its compiled programs in regcli's cache (`regcli.cache`: `~/.cache/regcli/jax`),
    so a train, sweep or tune of shapes compiled before skips XLA compilation (epoch 1 of the
    quickstart: 3.7 s -> 1.1 s here). Compiled programs never change numbers (tests/test_jax_cache.py).

    Before JAX is imported. Skipped when `JAX_COMPILATION_CACHE_DIR` is already set (the user's
    own cache wins) or `REGCLI_JAX_CACHE=off`; clear it with `rm -rf ~/.cache/regcli/jax`.
    """
    if os.environ.get(JAX_CACHE_ENV_VAR, "").lower() in ("0", "off", "false", "no") or "jax" in sys.modules:
        return
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    from regcli.cache import cache_dir

    directory = cache_dir() / "jax"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: compile every time, as without the cache (JAX would warn per program)
    if not os.access(directory, os.W_OK):
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(directory)
    # JAX caches only programs that took over 1 s to compile by default; regcli's are many small ones.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


def import_keras_quietly():
    """Imports Keras (and its backend) with C-level stderr silenced, then returns the module.

    TensorFlow's C++ runtime prints CUDA-probing lines on CPU-only machines before any
    log level applies. Python exceptions are unaffected: they surface after stderr is back.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import keras

                if keras.backend.backend() == "tensorflow":
                    import tensorflow as tf

                    tf.config.list_physical_devices("GPU")  # the CUDA probe happens here
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
    return keras


def backend_name() -> str:
    """The backend Keras runs on (Keras is imported by now: `select` came first)."""
    import keras

    return keras.backend.backend()


def backend_version() -> str:
    name = backend_name()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            return tf.__version__
        if name == "jax":
            import jax

            return jax.__version__
        if name == "torch":
            import torch

            return torch.__version__
    except ImportError:
        return "unknown"
    return "unknown"


def visible_gpus() -> list[str]:
    """Names of the accelerators the active backend can see."""
    name = backend_name()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if name == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
        if name == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a backend without a GPU plugin raises various errors here
        return []
    return []
