"""``toposcope features CORPUS``: extract the log-mel feature shards once (parallel, resumable), verify, repair."""

from __future__ import annotations

HELP = "extract a corpus's features into on-disk shards once (parallel --jobs, resumable; --verify, --repair)"
DESCRIPTION = ("Extract the log-mel features of every utterance for a config into CORPUS/.cache/features-<key>/ "
               "(float32 shards read lazily by train/evaluate/profile). Interrupted extraction resumes; changed "
               "audio is re-extracted. --verify reads everything once and reports corrupt shards; --repair "
               "recomputes them. train/evaluate extract on demand anyway: this command does it ahead, in parallel.")


def add_arguments(p) -> None:
    p.add_argument("data", metavar="CORPUS", help="corpus directory")
    p.add_argument("--config", default="small", metavar="NAME|TOML", help="run config whose features to use "
                                                                           "(default small)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="extraction processes (default: $TOPOSCOPE_JOBS or 1)")
    p.add_argument("--verify", action="store_true", help="read every utterance once and check it (CRC-32)")
    p.add_argument("--repair", action="store_true", help="recompute truncated or corrupt shards")
    p.add_argument("--cache", metavar="DIR", help="shard folder root (default CORPUS/.cache)")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..data import extract_features

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    r = extract_features(args.data, args.config, jobs=args.jobs, repair=args.repair, verify=args.verify,
                         cache=args.cache or True, progress=not args.no_progress)
    print(f"{r['utterances']} utterance(s), {r['hours']:.2f} h -> {r['shards']} shard(s), "
          f"{r['bytes'] / 2 ** 20:.1f} MiB in {r['folder']} ({r['seconds']:.1f} s)")
    for p in r["problems"]:
        print(f"problem: {p}")
    return 1 if r["problems"] else 0
