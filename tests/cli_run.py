"""Running `edgehar` in-process from a test, and the one-line error contract."""

from edgehar.cli import main


def run(argv, capsys):
    """(exit status, stdout, stderr) of `edgehar argv`, run in-process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    """The contract for bad input: exit 2 and one line `edgehar: error: ...` holding `fragments`."""
    assert code == 2, err
    assert err.startswith("edgehar: error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
