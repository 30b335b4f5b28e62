"""Training: a validated spec and a split data set in, a trained model and its history out.

The data flow:
  backend.select (KERAS_BACKEND, before Keras is imported)
  -> fit.prepare_model (seed, `regcli.model.build_model`, init_from weights, freeze)
  -> fit.train: compile, then `fit` fed by `feed.Feeder`, with the `callbacks`
     (EpochRecorder, early stopping, Checkpointer) -> fit.finish: the shipped epoch, the
     inference-mode metrics and the summary (a `TrainResult`).
Packed training runs K compatible specs (`packs.pack_key`) as K towers of one fused model
(`packed.train_packed`); same-shape towers share one `stack.TowerStack`. Writing the run
directory is `regcli.experiment`'s job.

Nothing is imported here: `regcli.training.backend` and `packs` stay free of Keras, so the
CLI and the sweep process can use them without loading a backend.
"""
