"""Channel names: the sensor axes models are trained on (`acc_x` ... `mag_z`), and how the
columns of your own files become them.

A manifest may name each column's axis (`"channels": {"ax": "acc_x", ...}`); without that,
three columns in an accelerometer's unit (g, m/s^2) whose names end in x, y and z are
`acc_x, acc_y, acc_z`, and three in a gyroscope's (rad/s, deg/s) `gyro_x, gyro_y, gyro_z`.
When a model's axes are still missing, `what_to_write` says the mapping to put in the
manifest.
"""

from __future__ import annotations

import json

SENSORS = ("acc", "gyro", "mag")
SENSOR_AXES = tuple(f"{sensor}_{axis}" for sensor in SENSORS for axis in "xyz")
SENSOR_OF_UNIT = {"g": "acc", "m/s^2": "acc", "rad/s": "gyro", "deg/s": "gyro"}
SENSOR_WORDS = {"acc": "an accelerometer", "gyro": "a gyroscope", "mag": "a magnetometer"}
UNITS_OF = {"acc": "g or m/s^2", "gyro": "rad/s or deg/s", "mag": "a magnetometer's unit"}


def _axis_letter(name: str) -> str:
    return name.strip()[-1:].lower()


def infer(columns, units) -> dict[str, str]:
    """{column: sensor axis} for each sensor whose unit three of the columns have, none of them
    named as an axis already, with names ending in x, y and z (`ax, ay, az` in g -> `acc_x,
    acc_y, acc_z`). Anything less certain (two or four such columns, `x, x2, y`, an axis name
    already taken) infers nothing for that sensor."""
    out: dict[str, str] = {}
    for sensor in ("acc", "gyro"):
        cols = [c for c, u in zip(columns, units) if SENSOR_OF_UNIT.get(u) == sensor]
        axes = [_axis_letter(c) for c in cols]
        targets = [f"{sensor}_{a}" for a in axes]
        if len(cols) == 3 and sorted(axes) == ["x", "y", "z"] and \
                not any(c in SENSOR_AXES for c in cols) and not set(targets) & set(columns):
            out.update(zip(cols, targets))
    return out


def what_to_write(columns, names, units, want):
    """The manifest's `"channels"` mapping that gives a model's axes `want` from a file whose
    channel columns `columns` are now named `names` (in `units`). Returns (mapping, axes no
    column is left for, columns whose unit must change too, whether some pair was made by
    column order rather than by name).

    A column already named as a wanted axis keeps it; each other wanted axis takes an unused
    column of its sensor's unit whose name ends in its letter, else the next unused one of that
    unit in file order, else (the unit declared wrong: more than a sensor's three columns
    share it) of another unit, by letter, then by order."""
    mapping: dict[str, str] = {c: n for c, n in zip(columns, names) if n in want}
    unit = dict(zip(columns, units))
    crowded = {s for s in SENSORS if sum(SENSOR_OF_UNIT.get(u) == s for u in units) > 3}
    missing = [w for w in want if w not in mapping.values()]
    by_order, wrong_unit = False, []
    for same_unit, by_name in ((True, True), (True, False), (False, True), (False, False)):
        for w in list(missing):
            sensor, axis = w.split("_")
            spare = [c for c in columns if c not in mapping
                     and (SENSOR_OF_UNIT.get(unit[c]) == sensor if same_unit else
                          SENSOR_OF_UNIT.get(unit[c]) in crowded)
                     and (not by_name or _axis_letter(c) == axis)]
            if spare:
                mapping[spare[0]] = w
                missing.remove(w)
                by_order |= not by_name
                if not same_unit:
                    wrong_unit.append(spare[0])
    order = {w: k for k, w in enumerate(want)}
    mapping = dict(sorted(mapping.items(), key=lambda kv: order[kv[1]]))
    return mapping, missing, wrong_unit, by_order


def mismatch_message(have, want, manifest=None, columns=None, units=None) -> str:
    """Why data with channels `have` cannot feed a model expecting `want`, and, for your own
    data (`manifest`: the manifest's name; `columns`: the columns the channels come from, in
    `units`), the `"channels"` mapping to write there."""
    text = (f"data has {len(have)} channels ({', '.join(have)}) but the model expects "
            f"{len(want)} ({', '.join(want)})")
    if manifest is None:
        return text
    mapping, missing, wrong_unit, by_order = what_to_write(
        columns or have, have, units or ("g",) * len(have), want)
    if missing:
        sensors = sorted({w.split("_")[0] for w in missing}, key=SENSORS.index)
        return (f"{text}: no column is left for {', '.join(missing)} (the model needs "
                f"{' and '.join(SENSOR_WORDS[s] for s in sensors)}): use data that has them")
    fix = ""
    if wrong_unit:
        sensors = sorted({mapping[c].split("_")[0] for c in wrong_unit}, key=SENSORS.index)
        fix = (f", and in \"units\" (one per channel, in that order) give {', '.join(wrong_unit)} "
               f"{' / '.join(UNITS_OF[s] for s in sensors)}")
    hint = " (paired in column order: check it)" if by_order else ""
    return f"{text}: write in {manifest} \"channels\": {json.dumps(mapping)}{fix}{hint}"
