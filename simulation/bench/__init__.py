"""The bench: every policy replayed on the same events, scored by the same code.

A *history* (:mod:`simulation.bench.history`) is the user events of one window: a generated
workload or a recorded trace. Each policy of :mod:`simulation.policies` replays the scored
history through :func:`simulation.runner.run` on a virtual clock, against a simulated fleet
whose boot times come from the boot spec (or schedule) and the seed (the same fleet seed
for every policy), and is measured as docs/architecture.md defines it ("Three numbers";
:mod:`simulation.bench.policy_run`).

The ``model`` policy is our engine with a model trained by the training package
(:mod:`simulation.bench.model`) on a *separate* history, never on the events it is scored
on (:mod:`simulation.bench.setup` says which history).

One module per step:

- :mod:`~simulation.bench.request`: what is asked (``BenchRequest``, ``parse_override``);
- :mod:`~simulation.bench.setup`: the histories and the trained model (``prepare``);
- :mod:`~simulation.bench.policy_run`: one policy replayed and scored (``run_policy``);
- :mod:`~simulation.bench.sweep`: the knobs swept, the Pareto frontiers (``run_sweep``);
- :mod:`~simulation.bench.run`: the whole bench (``run_bench``);
- :mod:`~simulation.bench.result`: its result and JSON (``BenchResult``);
- :mod:`~simulation.bench.table` and :mod:`~simulation.bench.plot`: the human table and
  the frontier plot;
- :mod:`~simulation.bench.progress` and :mod:`~simulation.bench.errors`: what they share.
"""
