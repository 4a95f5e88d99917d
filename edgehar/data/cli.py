"""`edgehar data summary|check|download|corpus`."""

from __future__ import annotations

import argparse
import json

from edgehar.data.registry import data_arg, names


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect and fetch recordings",
                       description="Inspect real recordings and fetch public data sets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    s = dsub.add_parser("summary", help="subjects, recordings, hours, classes, windows per class",
                        description="Summarise a data set: subjects, recordings, hours, classes "
                                    "and windows per class at the default 2.56 s window, 50%% hop.")
    s.add_argument("dataset", type=data_arg, metavar="DATA",
                   help=f"a data set ({', '.join(names())}; dsads:UNIT for one unit) or a folder "
                        "of your own CSV recordings with an edgehar.json manifest")
    s.add_argument("--root", help="its folder (default: $EDGEHAR_DATA/<dataset folder>)")
    s.add_argument("--json", action="store_true", help="print JSON for scripts")
    s.set_defaults(func=run_summary)

    c = dsub.add_parser("check", help="read a folder of your own recordings and report every problem",
                        description="Read a folder of CSV recordings and its edgehar.json manifest "
                                    "(README: Your own data); print per file its rows, rate, channels "
                                    "and labels, then every problem with file and line. Exit status "
                                    "2 when there is any problem.")
    c.add_argument("folder", help="folder holding edgehar.json and the CSV files")
    c.add_argument("--json", action="store_true", help="print JSON for scripts")
    c.set_defaults(func=run_check)

    d = dsub.add_parser("download", help="fetch, verify and cache a public data set",
                        description="Download the public UCI HAPT archive, verify its checksum and "
                                    "cache it under the user cache folder; prints the folder.")
    d.add_argument("dataset", choices=["hapt"], help="data set name")
    d.add_argument("--url", help="archive URL (default: the UCI repository, or $EDGEHAR_HAPT_URL)")
    d.add_argument("--sha256", help="expected SHA-256 of the archive")
    d.add_argument("--dest", help="cache folder (default: the user cache folder)")
    d.set_defaults(func=run_download)


def run_summary(args: argparse.Namespace) -> int:
    from edgehar.data.datasets import summary

    info = summary(args.dataset, args.root)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['dataset']}: {info['root']}")
    print(f"  subjects    {info['subjects']}")
    print(f"  recordings  {info['recordings']}")
    print(f"  hours       {info['hours']:.2f}")
    print(f"  rate        {', '.join(f'{r:g}' for r in info['rate_hz'])} Hz")
    print(f"  channels    {', '.join(f'{c} [{u}]' for c, u in zip(info['channels'], info['units']))}")
    print(f"  placements  {', '.join(info['placements'])}")
    print(f"  devices     {', '.join(info['devices'])}")
    if info["classes"]:
        win = info["window"]
        print(f"  {'class':<22}{'hours':>8}{'windows':>10}   ({win['samples']} samples, hop {win['hop']})")
        for name, hours in info["classes"].items():
            canon = info["canonical"].get(name, name)
            print(f"  {name:<22}{hours:>8.3f}{info['windows_per_class'][name]:>10}"
                  + (f"   -> {canon}" if canon != name else ""))
        print(f"  {'(unlabelled)':<22}{'':>8}{info['unlabelled_windows']:>10}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    import sys

    from edgehar.data.owndata import check_folder

    info = check_folder(args.folder)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{info['folder']}: {len(info['files'])} files")
        for f in info["files"]:
            if not f["ok"]:
                print(f"  {f['file']}: unreadable (see below)")
                continue
            labels = ", ".join(f"{k} {v}" for k, v in f["labels"].items()) or "none"
            print(f"  {f['file']}: {f['rows']} rows, {f['rate_hz']:g} Hz"
                  f"{' (resampled on its times)' if f['resampled'] else ''}, "
                  f"{', '.join(f'{c} [{u}]' for c, u in zip(f['channels'], f['units']))}; "
                  f"subject {f['subject']}; labels {labels}; unlabelled {f['unlabelled']}")
    for problem in info["problems"]:
        print(f"edgehar: error: {problem}", file=sys.stderr)
    return 2 if info["problems"] else 0


def run_download(args: argparse.Namespace) -> int:
    from edgehar.data.download import download_hapt

    kwargs = {k: v for k, v in (("url", args.url), ("sha256", args.sha256)) if v}
    print(download_hapt(dest=args.dest, **kwargs))
    return 0
