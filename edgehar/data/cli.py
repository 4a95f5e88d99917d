"""`edgehar data summary|download`."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect and fetch recordings",
                       description="Inspect real recordings and fetch public data sets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    s = dsub.add_parser("summary", help="subjects, recordings, hours, classes, windows per class",
                        description="Summarise a data set: subjects, recordings, hours, classes "
                                    "and windows per class at the default 2.56 s window, 50%% hop.")
    s.add_argument("dataset", choices=["hapt", "banglejs", "axivity"], help="data set name")
    s.add_argument("--root", help="its folder (default: $EDGEHAR_DATA/<dataset folder>)")
    s.add_argument("--json", action="store_true", help="print JSON for scripts")
    s.set_defaults(func=run_summary)

    d = dsub.add_parser("download", help="fetch, verify and cache a public data set",
                        description="Download the public UCI HAPT archive, verify its checksum and "
                                    "cache it under the user cache folder; prints the folder.")
    d.add_argument("dataset", choices=["hapt"], help="data set name")
    d.add_argument("--url", type=_url, help="archive URL (default: the UCI repository, or $EDGEHAR_HAPT_URL)")
    d.add_argument("--sha256", help="expected SHA-256 of the archive")
    d.add_argument("--dest", help="cache folder (default: the user cache folder)")
    d.set_defaults(func=run_download)


def _url(text: str) -> str:
    from edgehar.data.download import check_url
    from edgehar.errors import UserError

    try:
        return check_url(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(e.message) from None


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
    if info["classes"]:
        win = info["window"]
        print(f"  {'class':<22}{'hours':>8}{'windows':>10}   ({win['samples']} samples, hop {win['hop']})")
        for name, hours in info["classes"].items():
            print(f"  {name:<22}{hours:>8.3f}{info['windows_per_class'][name]:>10}")
        print(f"  {'(unlabelled)':<22}{'':>8}{info['unlabelled_windows']:>10}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from edgehar.data.download import download_hapt

    kwargs = {k: v for k, v in (("url", args.url), ("sha256", args.sha256)) if v}
    print(download_hapt(dest=args.dest, **kwargs))
    return 0
