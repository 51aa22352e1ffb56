"""The `co2net` command: synthesize, ingest, evaluate, compare, summary.

(Named `console.py` because Kedro treats a package's `cli.py` as a plugin of the `kedro` command.)

Each sub-command is a thin argparse front to a library function, so the same code runs inside
Kedro nodes, in tests and here. Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import sys


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from co2net_pipeline.data.synthetic import synthesize_command

    params = {"seed": args.seed, "feature_dim": args.feature_dim}
    return synthesize_command(
        output_dir=args.output,
        dataset_name=args.dataset_name,
        params={k: v for k, v in params.items() if v is not None},
    )


def _cmd_ingest(args: argparse.Namespace) -> int:
    from co2net_pipeline.data.ingest import ingest_command

    return ingest_command(
        features=args.features,
        annotations=args.annotations,
        fmt=args.format,
        dataset_name=args.dataset_name,
        output=args.output,
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from co2net_pipeline.evaluation import evaluate_command

    return evaluate_command(
        predictions=args.predictions,
        ground_truth=args.ground_truth,
        subset=args.subset,
        units=args.units,
        tiou=args.tiou,
        output=args.output,
    )


def _cmd_compare(args: argparse.Namespace) -> int:
    from co2net_pipeline.tracking import compare_command

    return compare_command(
        experiment=args.experiment,
        run_ids=args.runs,
        output_dir=args.output,
        tracking_uri=args.tracking_uri,
    )


def _cmd_summary(args: argparse.Namespace) -> int:
    from co2net_pipeline.tracking import summary_command

    return summary_command(experiment=args.experiment, tracking_uri=args.tracking_uri)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="co2net", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "synthesize", help="write the embedded SYNTHETIC THUMOS14-shaped feature set"
    )
    p.add_argument("--output", default="data/01_raw/synthetic")
    p.add_argument("--dataset-name", default="Thumos14reduced")
    p.add_argument("--feature-dim", type=int, default=None, help="channels per modality")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_cmd_synthesize)

    p = sub.add_parser("ingest", help="validate features + annotations and write the feature store")
    p.add_argument("--features", required=True)
    p.add_argument("--annotations", default=None)
    p.add_argument("--format", default="wtalc", choices=["wtalc", "npy-folder", "hdf5"])
    p.add_argument("--dataset-name", default=None)
    p.add_argument("--output", default=None, help="feature store path (HDF5)")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("evaluate", help="detection mAP of any detector's output")
    p.add_argument(
        "--predictions",
        required=True,
        help="CSV video_id,t_start,t_end,label,score or ActivityNet JSON",
    )
    p.add_argument(
        "--ground-truth", default="thumos14", help="thumos14 | activitynet12 | CSV/JSON file"
    )
    p.add_argument("--subset", default=None)
    p.add_argument("--units", default="snippets", choices=["snippets", "seconds"])
    p.add_argument("--tiou", type=_floats, default=None, help="e.g. 0.1,0.2,0.3")
    p.add_argument("--output", default=None, help="write the metrics as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "compare", help="side-by-side table of MLflow runs (differing params, metrics)"
    )
    p.add_argument("--experiment", default="co2net")
    p.add_argument("--runs", nargs="*", default=None, help="run ids (default: the latest runs)")
    p.add_argument("--output", default="data/08_reporting/comparison")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("summary", help="headline metrics of the latest run")
    p.add_argument("--experiment", default="co2net")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    p.set_defaults(func=_cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"co2net {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
