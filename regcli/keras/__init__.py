"""regcli for your own Keras code: `RunRecorder` writes a regcli run directory from any `model.fit`.

    from regcli.keras import RunRecorder

    recorder = RunRecorder("runs/", name="mine", train_data=(x, y))
    model.fit(x, y, validation_data=(xv, yv), epochs=50, callbacks=[recorder])
    # then: regcli diagnose runs/mine-..., regcli report, compare, test, ls

`import regcli` never imports this package; importing `RunRecorder` imports Keras (with the
backend your process already uses). `regcli.keras.recorded`, which `regcli test` reads a
recorded run with, imports no Keras. The modules: `recorder` (the callback), `modelinfo`
(what a user's compiled model is in regcli's terms), `recorded` (the reading side).
See docs/recorder.md.
"""

from __future__ import annotations

__all__ = ["RunRecorder"]


def __getattr__(name: str):
    if name == "RunRecorder":  # imported on first use: the package itself stays free of Keras
        from regcli.keras.recorder import RunRecorder

        return RunRecorder
    raise AttributeError(f"module 'regcli.keras' has no attribute {name!r}")
