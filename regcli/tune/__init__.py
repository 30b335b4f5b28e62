"""`regcli tune`: the seed's loop automated — measure the gap, turn one knob, validate, repeat, ship.

The data flow, one module each:

- `plan`: the base spec and options -> a validated `TunePlan`; configurations and their trial ids;
- `decide`: which recommendations become candidates, and the seed-noise acceptance rule (pure);
- `trials`: a configuration's seed runs read back from their directories, and diagnosed;
- `loop`: the steps, each a batch of trials through the sweep's `trial_tasks`/`run_trials`/executors;
- `story` and `plots`: steps.csv, results.csv, trajectory.png, best.json and the final test;
  `console`: the summary `regcli tune` prints.

Importing this package imports neither TensorFlow nor pandas: `regcli tune --help` stays instant.
"""

from regcli.tune.console import summary_text
from regcli.tune.loop import TuneResult, run_tune
from regcli.tune.plan import TunePlan, parse_seeds, prepare_tune

__all__ = ["TunePlan", "TuneResult", "parse_seeds", "prepare_tune", "run_tune", "summary_text"]
