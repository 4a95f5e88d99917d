"""`edgehar demo`: a model on the wrist in one command.

By default (a data root holding banglejs_wrist/: `$EDGEHAR_DATA` or `--data`) the shipped wrist
student is deployed, with no training: its int8 artifact from the model zoo, profiled, and fed
Bangle.js user 2's whole recording through the bridge into `live`, whose agreement is compared
with the figure the zoo card records. `--train` (and the flows with no shipped model: a data set,
your own folder, no data at all) trains the whole flow from scratch first.

    config.py   the one config every step reads (which flow, data, sizes)
    data.py     the training flow's windows and replay, one loader per kind of data
    wrist.py    the wrist corpus teacher and student, and the Bangle.js replay
    steps.py    the named steps and the two flows that chain them
    live.py     a recording through the bridge (sim://, in process) into live, and its scores
    report.py   demo.json and the text report
    command.py  the command (`register`: its parser, as edgehar.cli lists it)

The figure the zoo records for a wrist student is measured by `edgehar.demo_wrist.live_figures`,
with this package's live step.
"""

from edgehar.demo.command import register  # noqa: F401  (the sub-command hook edgehar.cli calls)
