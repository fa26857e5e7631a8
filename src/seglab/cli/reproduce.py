"""seglab-reproduce: rerun a run from its saved config into a new folder."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seglab-reproduce",
        description="Rerun a seglab run from its .hydra/config.yaml into a new folder; "
                    "metrics.json records `reproduces: <run>`.")
    parser.add_argument("run", type=Path, help="the run folder to reproduce")
    parser.add_argument("overrides", nargs="*", help="key=value changes to single values, "
                        "e.g. trainer.max_epochs=3")
    parser.add_argument("--out", type=Path, default=None,
                        help="the new run folder (default: <log dir>/reproduce/runs/<time>)")
    return parser.parse_args(argv)


def _log_to(output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s",
                        handlers=[logging.StreamHandler(),
                                  logging.FileHandler(output_dir / "reproduce.log")])


def main(argv: list[str] | None = None) -> None:
    """The `seglab-reproduce` console script."""
    args = parse_args(argv)  # --help and usage errors answer before torch is imported
    from seglab.core.errors import USER_ERRORS, one_line
    from seglab.engine.training import train
    from seglab.runs.reproduction import load_source_config, prepare_reproduction
    from seglab.runs.task import run_task

    try:
        source = load_source_config(args.run)
        log_dir = Path(str(source.get("paths", {}).get("log_dir") or "outputs"))
        output_dir = (args.out or log_dir / "reproduce" / "runs" /
                      time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
        cfg, differences = prepare_reproduction(args.run, output_dir, args.overrides)
    except USER_ERRORS as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    if differences:
        print(f"note: {args.run} was made with other versions ({'; '.join(differences)}); "
              "both are recorded in metrics.json", flush=True)
    _log_to(output_dir)
    run_task(train, cfg)
    print(f"reproduces: {args.run.resolve()}")


if __name__ == "__main__":
    main()
