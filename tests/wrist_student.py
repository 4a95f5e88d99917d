"""A tiny wrist student for the tests that need a real trained model and its int8 export."""

ACC = ("acc_x", "acc_y", "acc_z")


def wrist_student(tmp, recs) -> dict:
    """A tiny 20 Hz accelerometer student trained for 30 steps on an own-data folder of the
    recordings `recs` (subject 4 held out), its checkpoint and its int8 export (no C array)."""
    import torch
    from edgehar.export.pipeline import export_student

    from edgehar.checkpoint import save_checkpoint
    from edgehar.data.datasets import activity_windows
    from edgehar.data.owndata import write_folder
    from edgehar.recipes import train_student_supervised

    folder = write_folder(recs, tmp / "mine")
    w = activity_windows(str(folder), None, rate=20.0, window=40, channels=ACC, units=("g",) * 3)
    torch.manual_seed(0)
    model, card = train_student_supervised(w.take(w.subject != 4), "tiny", steps=30, progress=False,
                                           data={"dataset": str(folder), "test_subjects": [4]})
    ckpt = tmp / "student.pt"
    save_checkpoint(ckpt, model, card)
    art = tmp / "art"
    export_student(ckpt, art, windows=w, test_subjects=[4], micro=False, progress=False, n_calib=100)
    return {"ckpt": ckpt, "art": art, "folder": folder, "card": card}
