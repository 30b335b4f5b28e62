"""Sweeps (SPEC §1 `regcli sweep`, §3): one-knob-at-a-time, grid and random searches over seeds.

The data flow, one module each:

- `spec`: the sweep spec -> a validated `Sweep` (every trial spec checked before anything runs);
- `expand`: strategy + params + seeds -> trials with stable ids (pure);
- `store`: the sweep-directory layout, trial states, the lock;
- `worker`: one trial in a worker process (threads, backend, `run_experiment`);
- `executors`: local spawned workers (`--jobs N`) or Ray tasks (`--executor ray`);
- `aggregate` and `plots`: trials' files -> results.csv, leaderboard.csv, best.json, figures;
- `datacurve`: a `data.train_fraction` sweep -> the data-size learning curve and its reading (pure);
- `run`: all of it end to end, with resume and Ctrl-C handling; `console`: progress and the table.

Importing this package imports neither TensorFlow nor pandas: `regcli validate` stays instant.
"""

from regcli.sweep.spec import Sweep, dump_sweep_yaml, load_sweep

__all__ = ["Sweep", "dump_sweep_yaml", "load_sweep"]
