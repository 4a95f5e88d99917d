"""`edgehar tune`: search student configurations on instructions MEASURED on emulated Cortex-M
cores (space.py: what is searched; budget.py: the --budget limits; measure.py: int8 export and
the emulated run; trial.py: one configuration distilled, scored and measured; search.py: the
Optuna study, resumable; pareto.py: the front and its report)."""
