"""Command line: ``python -m skcem demo`` (also installed as ``skcem``)."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skcem", description="Contrastive explanations.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="explain an MLP on scikit-learn's digits")
    demo.add_argument("-n", "--n-instances", type=int, default=5)
    demo.add_argument("--figure", default="skcem_demo.png", help="PNG file to write")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(n_instances=args.n_instances, figure=args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
