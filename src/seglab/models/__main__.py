"""`python -m seglab.models matrix` prints the README's support matrix;
`python -m seglab.models size unet:mobilenet_v2 ... [--input 256 256] [--classes 7]` measures
parameters and GFLOPs."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from seglab.models.complexity import count_gflops, count_parameters
from seglab.models.registry import build_model, support_matrix


def size_table(pairs: list[str], height: int, width: int, num_classes: int) -> Table:
    table = Table(title=f"size at {height}×{width}, {num_classes} classes")
    for column in ("model", "encoder", "parameters", "GFLOPs"):
        table.add_column(column, justify="left" if column in ("model", "encoder") else "right")
    for pair in pairs:
        model, _, encoder = pair.partition(":")
        net = build_model(model, encoder, num_classes)
        table.add_row(model, encoder, f"{count_parameters(net):,}",
                      f"{count_gflops(net, height, width):.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m seglab.models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("matrix", help="print the model × encoder support matrix (Markdown)")
    size = commands.add_parser("size", help="parameters and GFLOPs of model:encoder pairs")
    size.add_argument("pairs", nargs="+", metavar="MODEL:ENCODER")
    size.add_argument("--input", nargs=2, type=int, default=(256, 256), metavar=("H", "W"))
    size.add_argument("--classes", type=int, default=21)
    args = parser.parse_args()
    if args.command == "matrix":
        print(support_matrix())
    else:
        try:
            Console().print(size_table(args.pairs, *args.input, args.classes))
        except ValueError as error:
            parser.error(str(error))


if __name__ == "__main__":
    main()
