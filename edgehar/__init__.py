"""edgehar: run wearable human-activity-recognition foundation models on the wrist.

The flow is one-way: recording -> windows -> model -> artifact -> runtime -> prediction,
and the model card (`edgehar.card.ModelCard`) travels with every object along it.
"""

__version__ = "0.1.0"
